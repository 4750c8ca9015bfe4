"""SealcardSession over a scripted connection and over a Python model of the applet."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from fake_card import FakeSealcard

from sealcard.card import constants as c
from sealcard.card.encoding import (
    decode_rsa_public_key,
    decode_status,
    encode_rsa_public_key,
    encode_tlv,
    parse_tlv,
)
from sealcard.card.errors import (
    CardResponseError,
    NotSealcardError,
    WrongDataError,
    WrongStateError,
)
from sealcard.card.session import SealcardSession
from sealcard.formats.attestation import verify_card, verify_signed_device_key
from sealcard.formats.certificates import CardKeyRole
from sealcard.parties.provider import CardNotBlankError, ProviderCA, initialize_card
from sealcard.transport.apdu import CHAINING_BIT

SERIAL = bytes.fromhex("0011223344556677")
CHAINED_CLA = c.CLA_PROPRIETARY | CHAINING_BIT


class Scripted:
    def __init__(self, answers: list[tuple[bytes, int]]) -> None:
        self.answers = answers
        self.sent: list[bytes] = []

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        self.sent.append(apdu)
        return self.answers.pop(0)


def status_bytes(state: int, serial: bytes | None = None, caps: int = c.CAP_TRNG) -> bytes:
    out = encode_tlv(c.TAG_VERSION, c.APPLET_VERSION.to_bytes(2, "big"))
    out += encode_tlv(c.TAG_STATE, bytes([state]))
    out += encode_tlv(c.TAG_CAPABILITIES, caps.to_bytes(2, "big"))
    if serial is not None:
        out += encode_tlv(c.TAG_SERIAL, serial)
    return out


@pytest.fixture(scope="module")
def rsa_keys() -> list[rsa.RSAPrivateKey]:
    return [rsa.generate_private_key(65537, 2048) for _ in range(3)]


@pytest.fixture
def card(rsa_keys: list[rsa.RSAPrivateKey]) -> Iterator[FakeSealcard]:
    yield FakeSealcard(rsa_key_source=list(rsa_keys))


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ProviderCA:
    return ProviderCA.create(tmp_path_factory.mktemp("ca"), b"unit test passphrase")


@pytest.fixture(scope="module")
def issuer_key() -> ec.EllipticCurvePublicKey:
    return ec.generate_private_key(ec.SECP256R1()).public_key()


def test_select_parses_version_state_capabilities_serial() -> None:
    conn = Scripted([(status_bytes(c.STATE_INITIALIZED, SERIAL), c.SW_OK)])
    session = SealcardSession(conn)
    assert conn.sent[0] == bytes([0, c.INS_SELECT, 4, 0, len(c.AID_APPLET)]) + c.AID_APPLET + b"\0"
    assert session.version == c.APPLET_VERSION
    assert session.state == c.State.INITIALIZED
    assert session.capabilities == c.Capability.TRNG
    assert session.serial == SERIAL
    assert session.status.serial_hex == SERIAL.hex().upper()


def test_select_without_serial_reports_none() -> None:
    session = SealcardSession(Scripted([(status_bytes(c.STATE_BLANK), c.SW_OK)]))
    assert session.serial is None
    assert session.state == c.State.BLANK


def test_a_card_without_the_applet_is_not_sealcard() -> None:
    with pytest.raises(NotSealcardError):
        SealcardSession(Scripted([(b"", c.SW_FILE_NOT_FOUND)]))


def test_malformed_status_is_a_response_error() -> None:
    with pytest.raises(CardResponseError, match="state"):
        decode_status(encode_tlv(c.TAG_VERSION, b"\x01\x00"))
    with pytest.raises(CardResponseError):
        parse_tlv(bytes([c.TAG_STATE, 5, 1]))


def test_rsa_tlv_round_trip(rsa_keys: list[rsa.RSAPrivateKey]) -> None:
    key = rsa_keys[0].public_key()
    encoded = encode_rsa_public_key(key)
    assert encoded[:4] == bytes([c.RsaTag.MODULUS, 0x82, 0x01, 0x00])
    assert decode_rsa_public_key(encoded).public_numbers() == key.public_numbers()
    with pytest.raises(CardResponseError):
        decode_rsa_public_key(encoded[:-1])


def test_wrong_state_error_names_command_and_sw() -> None:
    conn = Scripted(
        [(status_bytes(c.STATE_INITIALIZED, SERIAL), c.SW_OK), (b"", c.SW_CONDITIONS_NOT_SATISFIED)]
    )
    session = SealcardSession(conn)
    with pytest.raises(WrongStateError, match=r"GENERATE KEY PAIR.*SW_CONDITIONS_NOT_SATISFIED"):
        session.generate_device_key()


def test_missing_objects_read_as_none(card: FakeSealcard) -> None:
    session = SealcardSession(card)
    assert session.device_public_key() is None
    assert session.device_key_certificate() is None
    assert session.signed_device_key() is None
    assert session.issuer_public_key() is None


def test_generate_keys_return_pyca_keys(card: FakeSealcard) -> None:
    session = SealcardSession(card)
    device = session.generate_key_pair(c.KeyRef.DEVICE)
    auth = session.generate_key_pair(c.KeyRef.ISSUER_AUTH)
    assert isinstance(device, rsa.RSAPublicKey)
    assert device.key_size == 2048
    assert isinstance(auth, ec.EllipticCurvePublicKey)
    read_back = session.device_public_key()
    assert read_back is not None
    assert read_back.public_numbers() == device.public_numbers()


def test_long_answers_come_through_get_response(card: FakeSealcard) -> None:
    session = SealcardSession(card)
    session.generate_device_key()
    get_response = [a for a in card.log if a[1] == c.INS_GET_RESPONSE]
    assert len(get_response) == 1, "a 265-byte RSA answer needs one GET RESPONSE in short mode"


def test_extended_mode_avoids_get_response(card: FakeSealcard) -> None:
    session = SealcardSession(card, extended=True)
    session.generate_device_key()
    assert not [a for a in card.log if a[1] == c.INS_GET_RESPONSE]


def test_put_certificate_chained_vs_extended(
    card: FakeSealcard, ca: ProviderCA, issuer_key: ec.EllipticCurvePublicKey
) -> None:

    session = SealcardSession(card)
    device = session.generate_device_key()
    cert = ca.issue(CardKeyRole.DEVICE, device, SERIAL)
    der = cert.public_bytes(Encoding.DER)
    card.log.clear()
    session.put_certificate(c.CertRef.DEVICE_KEY, cert)
    chunks = (len(der) + 254) // 255
    assert len(card.log) == chunks
    assert all(a[0] == CHAINED_CLA for a in card.log[:-1])
    assert card.log[-1][0] == c.CLA_PROPRIETARY
    card.log.clear()
    session.extended = True
    session.put_certificate(c.CertRef.DEVICE_KEY, der)
    assert len(card.log) == 1
    stored = session.device_key_certificate()
    assert stored == cert


def test_card_refusal_is_typed(card: FakeSealcard) -> None:
    session = SealcardSession(card)
    session.generate_device_key()
    with pytest.raises(WrongDataError, match="SW_WRONG_DATA"):
        session.put_certificate(c.CertRef.DEVICE_KEY, b"\x31\x00")


def test_set_serial_validates_length_before_sending(card: FakeSealcard) -> None:
    session = SealcardSession(card)
    sent = len(card.log)
    with pytest.raises(ValueError, match="4 to 16"):
        session.set_serial(b"\x01\x02")
    assert len(card.log) == sent


@pytest.mark.parametrize("extended", [False, True])
def test_initialize_card_end_to_end(
    card: FakeSealcard, ca: ProviderCA, issuer_key: ec.EllipticCurvePublicKey, extended: bool
) -> None:
    session = SealcardSession(card, extended=extended)
    result = initialize_card(session, ca, issuer_key, SERIAL)
    assert card.state == c.STATE_INITIALIZED
    assert result.status.state == c.State.INITIALIZED
    assert result.serial == SERIAL
    assert result.signed_device_key is not None
    verify_signed_device_key(
        result.signed_device_key, SERIAL, result.device_public_key, result.issuer_auth_public_key
    )
    assert verify_card(ca.certificate, result.public_data).genuine
    assert result.traffic.apdus >= 8
    assert result.traffic.bytes_sent > 1000
    assert 0 <= result.keygen_seconds <= result.total_seconds
    with pytest.raises(CardNotBlankError):
        initialize_card(session, ca, issuer_key, SERIAL)
    with pytest.raises(WrongStateError):
        session.generate_issuer_auth_key()


def test_initialize_card_with_card_serial(
    card: FakeSealcard, ca: ProviderCA, issuer_key: ec.EllipticCurvePublicKey
) -> None:
    result = initialize_card(SealcardSession(card), ca, issuer_key)
    assert result.serial == card.serial
    assert len(result.serial) == c.RANDOM_SERIAL_LENGTH
