"""Issue 3 through PC/SC on simulated cards: seal -> personalize -> verify PIN -> sign -> verify.

The applet's own commands are sent as raw APDUs (constants from `sealcard.card.constants`),
so this test depends only on step A's host code (`initialize_card`) and on the sealed-blob
code (`sealcard.crypto.sealed_blob.seal`), not on the issue-3 session methods.
Signatures are checked with libsecp256k1 (coincurve), which accepts only low S.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import coincurve
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from simcards import reset_blank, tear

from sealcard.card import constants as c
from sealcard.card.session import SealcardSession
from sealcard.crypto import sealed_blob as sb
from sealcard.parties.provider import ProviderCA, initialize_card
from sealcard.transport.apdu import SHORT_MAX_DATA, SHORT_MAX_LE, Apdu
from sealcard.transport.pcsc import PcscConnection

pytestmark = pytest.mark.sim

PIN = b"123456"
PUK = b"87654321"
WRONG_PIN = b"000000"
HASH_LENGTH = 32
SIGNATURES = 20
TIMING_RUNS = int(os.environ.get("SEALCARD_TIMING_RUNS", "20"))
SECP256K1_HALF_ORDER = sb.SECP256K1_ORDER // 2


@contextmanager
def session_on(card: Any, *, extended: bool = False) -> Iterator[SealcardSession]:
    with PcscConnection.open(card.reader) as connection:
        yield SealcardSession(connection, extended=extended)


def transmit(
    session: SealcardSession, cla: int, ins: int, p1: int = 0, p2: int = 0, data: bytes = b""
) -> tuple[bytes, int]:
    """One command through the session's stack (chaining, GET RESPONSE); (answer, SW)."""
    return session.protocol.transceive(Apdu(cla, ins, p1, p2, data, SHORT_MAX_LE))


def personalize(session: SealcardSession, blob: bytes) -> int:
    return transmit(session, c.CLA_PROPRIETARY, c.INS_PERSONALIZE, data=blob)[1]


def verify_pin(session: SealcardSession, pin: bytes) -> int:
    return transmit(session, c.CLA_ISO7816, c.INS_VERIFY, 0, c.PIN_REF_USER, pin)[1]


def sign_hash(session: SealcardSession, digest: bytes) -> tuple[bytes, int]:
    p1, p2 = c.PSO_P1P2_SIGN >> 8, c.PSO_P1P2_SIGN & 0xFF
    return transmit(session, c.CLA_ISO7816, c.INS_SIGN_HASH, p1, p2, digest)


def get_data(session: SealcardSession, obj: int) -> tuple[bytes, int]:
    return transmit(session, c.CLA_PROPRIETARY, c.INS_GET_DATA, obj >> 8, obj & 0xFF)


def tries_left(count: int) -> int:
    return int(c.SW_PIN_TRIES_REMAINING) | count


def ecdsa_sign(key: ec.EllipticCurvePrivateKey) -> Any:
    return lambda message: key.sign(message, ec.ECDSA(hashes.SHA256()))


def point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


@dataclass
class Prepared:
    """An initialized card (open session) and a good blob for it."""

    session: SealcardSession
    serial: bytes
    device_key: rsa.RSAPublicKey
    issuer: ec.EllipticCurvePrivateKey
    user_key: bytes
    device_auth: ec.EllipticCurvePrivateKey
    blob: bytes


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ProviderCA:
    return ProviderCA.create(tmp_path_factory.mktemp("ca"), b"personalize test passphrase")


def prepare(session: SealcardSession, ca: ProviderCA, serial: bytes | None = None) -> Prepared:
    """Step A with a fresh issuer key, then seal a blob (FIG. 5: PIN and PUK inside)."""
    issuer = ec.generate_private_key(ec.SECP256R1())
    init = initialize_card(session, ca, issuer.public_key(), serial)
    user_key = coincurve.PrivateKey().secret
    device_auth = ec.generate_private_key(ec.SECP256R1())
    payload = sb.SealedPayload(user_key, point(device_auth), PIN, PUK)
    blob = sb.seal(payload, init.serial, init.device_public_key, ecdsa_sign(issuer))
    return Prepared(
        session, init.serial, init.device_public_key, issuer, user_key, device_auth, blob
    )


def assert_unchanged(session: SealcardSession, what: str) -> None:
    assert session.refresh_status().state == c.State.INITIALIZED, what
    assert get_data(session, c.DO_USER_PUBLIC_KEY)[1] == c.SW_REFERENCED_DATA_NOT_FOUND, what


def flip(blob: bytes, index: int) -> bytes:
    changed = bytearray(blob)
    changed[index] ^= 0x01
    return bytes(changed)


def well_signed(p: Prepared, plaintext: bytes) -> bytes:
    """A blob the issuer signed around any plaintext (even one `seal` would refuse)."""
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    ciphertext = p.device_key.encrypt(plaintext, oaep)
    message = sb.signed_message(p.serial, ciphertext)
    return sb.assemble(p.serial, ciphertext, ecdsa_sign(p.issuer)(message))


def test_personalize_sign_and_failures(sim_cards: list[Any], ca: ProviderCA) -> None:
    card, other_card = sim_cards[2], sim_cards[3]
    reset_blank(other_card)
    with session_on(other_card, extended=True) as other:
        other_blob = prepare(other, ca).blob
    reset_blank(card)
    with session_on(card, extended=True) as session:
        p = prepare(session, ca)
        blob = p.blob
        n = len(p.serial)
        ciphertext_at = 5 + n + 2
        # Every refused blob leaves the card exactly as it was, each with its SW.
        refused = {
            "magic": (flip(blob, 0), c.SW_WRONG_DATA),
            "version": (flip(blob, 3), c.SW_WRONG_DATA),
            "truncated": (blob[:-1], c.SW_WRONG_DATA),
            "extended": (blob + b"\x00", c.SW_WRONG_DATA),
            "serial": (flip(blob, 5), c.SW_REFERENCED_DATA_NOT_FOUND),
            "another card's blob": (other_blob, c.SW_REFERENCED_DATA_NOT_FOUND),
            "ciphertext": (flip(blob, ciphertext_at + 17), c.SW_SECURITY_STATUS_NOT_SATISFIED),
            "signature": (flip(blob, len(blob) - 2), c.SW_SECURITY_STATUS_NOT_SATISFIED),
            "another issuer key": (
                sb.assemble(
                    p.serial,
                    blob[ciphertext_at : ciphertext_at + 256],
                    ecdsa_sign(ec.generate_private_key(ec.SECP256R1()))(
                        blob[: ciphertext_at + 256]
                    ),
                ),
                c.SW_SECURITY_STATUS_NOT_SATISFIED,
            ),
            "user key 0": (
                well_signed(p, bytes([1, 32]) + bytes(32) + bytes([2, 65]) + point(p.device_auth)),
                c.SW_DATA_INVALID,
            ),
            "not OAEP at all": (
                sb.assemble(
                    p.serial,
                    bytes(256),
                    ecdsa_sign(p.issuer)(sb.signed_message(p.serial, bytes(256))),
                ),
                c.SW_DATA_INVALID,
            ),
        }
        for name, (bad, expected) in refused.items():
            assert personalize(session, bad) == expected, name
            assert_unchanged(session, name)

        # A card reset between chained APDUs: the chain is gone, nothing changed.
        first = Apdu(c.CLA_PROPRIETARY_CHAINING, c.INS_PERSONALIZE, 0, 0, blob[:SHORT_MAX_DATA])
        assert session.connection.send_and_receive(first.encode())[1] == c.SW_OK
    tear(card)
    with session_on(card) as session:
        assert personalize(session, blob[SHORT_MAX_DATA:]) == c.SW_WRONG_DATA
        assert_unchanged(session, "reset mid-chain")

        # The good blob, chained (session without extended length).
        before = session.traffic.apdus
        assert personalize(session, blob) == c.SW_OK
        assert session.traffic.apdus - before == 2
        assert session.refresh_status().state == c.State.PERSONALIZED
        assert personalize(session, blob) == c.SW_CONDITIONS_NOT_SATISFIED

        public, sw = get_data(session, c.DO_USER_PUBLIC_KEY)
        assert sw == c.SW_OK
        expected_public = coincurve.PrivateKey(p.user_key).public_key
        assert public == expected_public.format(compressed=False)
        status, sw = get_data(session, c.DO_PIN_STATUS)
        assert (sw, status) == (c.SW_OK, bytes([1, c.PIN_TRY_LIMIT, c.PUK_TRY_LIMIT, 1]))

        digest = os.urandom(HASH_LENGTH)
        assert sign_hash(session, digest)[1] == c.SW_SECURITY_STATUS_NOT_SATISFIED
        assert verify_pin(session, WRONG_PIN) == tries_left(c.PIN_TRY_LIMIT - 1)
        assert verify_pin(session, PIN) == c.SW_OK

        for _ in range(SIGNATURES):
            digest = os.urandom(HASH_LENGTH)
            der, sw = sign_hash(session, digest)
            assert sw == c.SW_OK
            _, s = decode_dss_signature(der)
            assert s <= SECP256K1_HALF_ORDER
            assert expected_public.verify(der, digest, hasher=None)

        challenge = os.urandom(16)
        answer, sw = transmit(session, c.CLA_ISO7816, c.INS_INTERNAL_AUTHENTICATE, data=challenge)
        assert sw == c.SW_OK
        message = b"SCIA" + bytes([n]) + p.serial + challenge
        auth_key = session.issuer_auth_public_key()
        assert auth_key is not None
        auth_key.verify(answer, message, ec.ECDSA(hashes.SHA256()))

        # Issuer-authenticated terminate: signed challenge and command, then state T.
        nonce, sw = transmit(session, c.CLA_ISO7816, c.INS_GET_CHALLENGE)
        assert sw == c.SW_OK
        assert len(nonce) == c.CHALLENGE_LENGTH
        signed = (
            b"SCIC"
            + bytes([n])
            + p.serial
            + nonce
            + bytes([c.INS_ISSUER_COMMAND, c.ISSUER_CMD_TERMINATE, 0, 0])
        )
        signature = p.device_auth.sign(signed, ec.ECDSA(hashes.SHA256()))
        command = bytes([0]) + signature
        assert (
            transmit(
                session, c.CLA_PROPRIETARY, c.INS_ISSUER_COMMAND, c.ISSUER_CMD_TERMINATE, 0, command
            )[1]
            == c.SW_OK
        )
        assert session.refresh_status().state == c.State.TERMINATED
        assert sign_hash(session, digest)[1] == c.SW_CONDITIONS_NOT_SATISFIED


def test_timing_personalize_and_sign(
    sim_cards: list[Any], ca: ProviderCA, record_property: Any
) -> None:
    """Median of TIMING_RUNS PERSONALIZE (one extended APDU) and SIGN HASH over PC/SC."""
    card = sim_cards[3]
    personalize_seconds: list[float] = []
    for _ in range(TIMING_RUNS):
        reset_blank(card)
        with session_on(card, extended=True) as session:
            p = prepare(session, ca)
            start = time.perf_counter()
            sw = personalize(session, p.blob)
            personalize_seconds.append(time.perf_counter() - start)
            assert sw == c.SW_OK
    with session_on(card) as session:
        assert verify_pin(session, PIN) == c.SW_OK
        sign_seconds: list[float] = []
        public = coincurve.PublicKey(get_data(session, c.DO_USER_PUBLIC_KEY)[0])
        for _ in range(TIMING_RUNS):
            digest = os.urandom(HASH_LENGTH)
            start = time.perf_counter()
            der, sw = sign_hash(session, digest)
            sign_seconds.append(time.perf_counter() - start)
            assert sw == c.SW_OK
            assert public.verify(der, digest, hasher=None)
    personalize_ms = statistics.median(personalize_seconds) * 1000
    sign_ms = statistics.median(sign_seconds) * 1000
    record_property("personalize_median_ms", round(personalize_ms, 2))
    record_property("sign_hash_median_ms", round(sign_ms, 2))
    print(
        f"\nPERSONALIZE median {personalize_ms:.2f} ms, SIGN HASH median {sign_ms:.2f} ms "
        f"(n={TIMING_RUNS}, PC/SC, simulator)"
    )
