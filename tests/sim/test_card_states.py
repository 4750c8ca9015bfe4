"""Every step A command in every state reachable now (BLANK, INITIALIZED): success and named SWs.

Drives the applet through PC/SC with raw APDUs (`protocol.transceive`, which
returns the status word instead of raising) so each answer is compared with
the named status word docs/apdu.md gives for that case.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from simcards import reset_blank

from sealcard.card import constants as c
from sealcard.card.session import SealcardSession
from sealcard.formats.attestation import verify_signed_device_key
from sealcard.formats.certificates import CardKeyRole
from sealcard.parties.provider import ProviderCA, initialize_card
from sealcard.transport.apdu import CHAINING_BIT, Apdu
from sealcard.transport.pcsc import PcscConnection

pytestmark = pytest.mark.sim

P80 = c.CLA_PROPRIETARY
P90 = c.CLA_PROPRIETARY | CHAINING_BIT
LE = 256
SERIAL = bytes.fromhex("00C0FFEE00000001")
UNKNOWN_INS = 0x02
UNKNOWN_CLA = 0xA0
UNKNOWN_P1 = 0x03
UNKNOWN_DO = 0x01FF
OFF_CURVE_POINT = b"\x04" + b"\x01" * 64


@contextmanager
def session_on(card: Any) -> Iterator[SealcardSession]:
    with PcscConnection.open(card.reader) as connection:
        yield SealcardSession(connection)


def sw_of(session: SealcardSession, apdu: Apdu) -> int:
    return session.protocol.transceive(apdu)[1]


def issuer_point() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


@pytest.fixture
def blank(sim_cards: list[Any]) -> Iterator[SealcardSession]:
    card = sim_cards[0]
    reset_blank(card)
    with session_on(card) as session:
        assert session.state == c.State.BLANK
        yield session


@pytest.fixture
def initialized(sim_cards: list[Any], ca: ProviderCA) -> Iterator[SealcardSession]:
    card = sim_cards[0]
    reset_blank(card)
    with session_on(card) as session:
        issuer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), issuer_point())
        initialize_card(session, ca, issuer, SERIAL)
        session.select()
        assert session.state == c.State.INITIALIZED
        yield session


BLANK_FAILURES = [
    (
        "generate: unknown key",
        Apdu(P80, c.INS_GENERATE_KEY_PAIR, UNKNOWN_P1, 0, le=LE),
        c.SW_INCORRECT_P1P2,
    ),
    (
        "generate: P2 set",
        Apdu(P80, c.INS_GENERATE_KEY_PAIR, c.KEY_DEVICE, 1, le=LE),
        c.SW_INCORRECT_P1P2,
    ),
    (
        "generate: data",
        Apdu(P80, c.INS_GENERATE_KEY_PAIR, c.KEY_ISSUER_AUTH, 0, b"\x00"),
        c.SW_WRONG_LENGTH,
    ),
    (
        "serial: too short",
        Apdu(P80, c.INS_SET_SERIAL, c.SERIAL_GIVEN, 0, b"\x01\x02\x03"),
        c.SW_WRONG_LENGTH,
    ),
    (
        "serial: too long",
        Apdu(P80, c.INS_SET_SERIAL, c.SERIAL_GIVEN, 0, bytes(17)),
        c.SW_WRONG_LENGTH,
    ),
    (
        "serial: random with data",
        Apdu(P80, c.INS_SET_SERIAL, c.SERIAL_RANDOM, 0, b"\x01"),
        c.SW_WRONG_LENGTH,
    ),
    ("serial: bad P1", Apdu(P80, c.INS_SET_SERIAL, UNKNOWN_P1, 0, SERIAL), c.SW_INCORRECT_P1P2),
    ("issuer key: 64 bytes", Apdu(P80, c.INS_PUT_ISSUER_KEY, 0, 0, bytes(64)), c.SW_WRONG_LENGTH),
    (
        "issuer key: not 04",
        Apdu(P80, c.INS_PUT_ISSUER_KEY, 0, 0, b"\x05" + bytes(64)),
        c.SW_WRONG_DATA,
    ),
    (
        "cert: key missing",
        Apdu(P80, c.INS_PUT_CERTIFICATE, c.CERT_DEVICE_KEY, 0, b"\x30\x00"),
        c.SW_CONDITIONS_NOT_SATISFIED,
    ),
    (
        "cert: bad P1",
        Apdu(P80, c.INS_PUT_CERTIFICATE, UNKNOWN_P1, 0, b"\x30\x00"),
        c.SW_INCORRECT_P1P2,
    ),
    (
        "sign: keys missing",
        Apdu(P80, c.INS_SIGN_DEVICE_KEY, 0, 0, le=LE),
        c.SW_CONDITIONS_NOT_SATISFIED,
    ),
    (
        "close: nothing there",
        Apdu(P80, c.INS_CLOSE_INITIALIZATION, 0, 0),
        c.SW_CONDITIONS_NOT_SATISFIED,
    ),
    (
        "get data: not set",
        Apdu(P80, c.INS_GET_DATA, 0x01, 0x20, le=LE),
        c.SW_REFERENCED_DATA_NOT_FOUND,
    ),
    (
        "get data: unknown",
        Apdu(P80, c.INS_GET_DATA, UNKNOWN_DO >> 8, UNKNOWN_DO & 0xFF, le=LE),
        c.SW_INCORRECT_P1P2,
    ),
    (
        "get data: with data",
        Apdu(P80, c.INS_GET_DATA, 0x01, 0x01, b"\x00", le=LE),
        c.SW_WRONG_LENGTH,
    ),
    (
        "get data: chained",
        Apdu(P90, c.INS_GET_DATA, 0x01, 0x02, b"\x00"),
        c.SW_CHAINING_NOT_SUPPORTED,
    ),
    (
        "get response: nothing pending",
        Apdu(c.CLA_ISO7816, c.INS_GET_RESPONSE, 0, 0, le=LE),
        c.SW_CONDITIONS_NOT_SATISFIED,
    ),
    ("unknown INS", Apdu(P80, UNKNOWN_INS, 0, 0), c.SW_INS_NOT_SUPPORTED),
    ("unknown CLA", Apdu(UNKNOWN_CLA, c.INS_GET_DATA, 0x01, 0x02, le=LE), c.SW_CLA_NOT_SUPPORTED),
]


@pytest.mark.parametrize(
    ("case", "apdu", "expected"), BLANK_FAILURES, ids=[x[0] for x in BLANK_FAILURES]
)
def test_blank_refusals(blank: SealcardSession, case: str, apdu: Apdu, expected: int) -> None:
    assert sw_of(blank, apdu) == expected, case
    blank.refresh_status()
    assert blank.state == c.State.BLANK
    assert blank.serial is None


def test_issuer_key_off_the_curve_is_refused(blank: SealcardSession) -> None:
    apdu = Apdu(P80, c.INS_PUT_ISSUER_KEY, 0, 0, OFF_CURVE_POINT)
    assert sw_of(blank, apdu) == c.SW_WRONG_DATA


def test_blank_certificate_errors_after_key_generation(
    blank: SealcardSession, ca: ProviderCA
) -> None:
    key = blank.generate_device_key()
    good = ca.issue(CardKeyRole.DEVICE, key, SERIAL).public_bytes(Encoding.DER)
    blank.put_certificate(c.CertRef.DEVICE_KEY, good)
    cases = [
        (Apdu(P80, c.INS_PUT_CERTIFICATE, c.CERT_DEVICE_KEY, 0, b"\x31\x00"), c.SW_WRONG_DATA),
        (Apdu(P80, c.INS_PUT_CERTIFICATE, c.CERT_DEVICE_KEY, 0, good + b"\x00"), c.SW_WRONG_DATA),
        (Apdu(P80, c.INS_PUT_CERTIFICATE, c.CERT_DEVICE_KEY, 0, b""), c.SW_WRONG_LENGTH),
        (
            Apdu(
                P80, c.INS_PUT_CERTIFICATE, c.CERT_DEVICE_KEY, 0, b"\x30\x82\x04\x01" + bytes(1025)
            ),
            c.SW_NOT_ENOUGH_MEMORY,
        ),
    ]
    blank.extended = True
    for apdu, expected in cases:
        assert sw_of(blank, apdu) == expected
    # a chain broken by another command
    assert (
        sw_of(blank, Apdu(P90, c.INS_PUT_CERTIFICATE, c.CERT_DEVICE_KEY, 0, good[:100])) == c.SW_OK
    )
    broken = Apdu(P80, c.INS_PUT_CERTIFICATE, c.CERT_ISSUER_AUTH_KEY, 0, good[100:])
    assert sw_of(blank, broken) == c.SW_LAST_COMMAND_OF_CHAIN_EXPECTED
    assert blank.device_key_certificate() is not None
    assert blank.get_data(c.DataObject.DEVICE_KEY_CERT) == good, "failures changed the certificate"


def test_blank_successes(blank: SealcardSession) -> None:
    device = blank.generate_device_key()
    auth = blank.generate_issuer_auth_key()
    random_serial = blank.generate_serial()
    assert len(random_serial) == c.RANDOM_SERIAL_LENGTH
    blank.set_serial(SERIAL)
    assert blank.read_serial() == SERIAL
    point = issuer_point()
    blank.put_issuer_key(ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point))
    assert blank.get_data(c.DataObject.ISSUER_PUBLIC_KEY) == point
    signature = blank.sign_device_key()
    verify_signed_device_key(signature, SERIAL, device, auth)
    assert blank.signed_device_key() == signature
    blank.set_serial(SERIAL[::-1])
    assert blank.signed_device_key() is None, "a new serial discards the signed device key"
    assert sw_of(blank, Apdu(P80, c.INS_CLOSE_INITIALIZATION)) == c.SW_CONDITIONS_NOT_SATISFIED


def test_new_key_discards_its_certificate(blank: SealcardSession, ca: ProviderCA) -> None:
    key = blank.generate_issuer_auth_key()
    blank.put_certificate(c.CertRef.ISSUER_AUTH_KEY, ca.issue(CardKeyRole.ISSUER_AUTH, key, SERIAL))
    assert blank.issuer_auth_key_certificate() is not None
    blank.generate_issuer_auth_key()
    assert blank.issuer_auth_key_certificate() is None


STEP_A_IN_INITIALIZED = [
    Apdu(P80, c.INS_GENERATE_KEY_PAIR, c.KEY_DEVICE, 0, le=LE),
    Apdu(P80, c.INS_GENERATE_KEY_PAIR, c.KEY_ISSUER_AUTH, 0, le=LE),
    Apdu(P80, c.INS_SET_SERIAL, c.SERIAL_GIVEN, 0, SERIAL),
    Apdu(P80, c.INS_SET_SERIAL, c.SERIAL_RANDOM, 0, le=LE),
    Apdu(P80, c.INS_PUT_ISSUER_KEY, 0, 0, issuer_point()),
    Apdu(P80, c.INS_PUT_CERTIFICATE, c.CERT_DEVICE_KEY, 0, b"\x30\x00"),
    Apdu(P80, c.INS_PUT_CERTIFICATE, c.CERT_ISSUER_AUTH_KEY, 0, b"\x30\x00"),
    Apdu(P80, c.INS_SIGN_DEVICE_KEY, 0, 0, le=LE),
    Apdu(P80, c.INS_CLOSE_INITIALIZATION),
]


def test_initialized_refuses_every_step_a_command(initialized: SealcardSession) -> None:
    before = {
        obj: initialized.get_data(obj) for obj in c.DataObject if obj <= c.DO_SIGNED_DEVICE_KEY
    }
    for apdu in STEP_A_IN_INITIALIZED:
        assert sw_of(initialized, apdu) == c.SW_CONDITIONS_NOT_SATISFIED, apdu
    after = {obj: initialized.get_data(obj) for obj in before}
    assert after == before


def test_initialized_answers_every_public_object(initialized: SealcardSession) -> None:
    assert initialized.read_serial() == SERIAL
    assert initialized.device_public_key() is not None
    assert initialized.issuer_auth_public_key() is not None
    assert initialized.issuer_public_key() is not None
    assert initialized.device_key_certificate() is not None
    assert initialized.issuer_auth_key_certificate() is not None
    assert initialized.signed_device_key() is not None
    status = initialized.refresh_status()
    assert status.state == c.State.INITIALIZED
    assert status.serial == SERIAL
    assert c.Capability.EXTENDED_LENGTH in status.capabilities
