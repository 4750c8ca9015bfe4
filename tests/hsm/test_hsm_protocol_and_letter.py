"""The request format and the PIN letter without a token (software keys stand in)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sealcard.errors import VerificationError
from sealcard.hsm import protocol
from sealcard.hsm.errors import RequestRefused
from sealcard.hsm.pin_letter import (
    PinLetterData,
    PinLetterError,
    build_pin_letter,
    make_issuer_certificate,
    open_pin_letter,
)

pytestmark = pytest.mark.hsm

NOW_MS = 1_800_000_000_000


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _sign(key: ec.EllipticCurvePrivateKey):  # type: ignore[no-untyped-def]
    return lambda data: key.sign(data, ec.ECDSA(hashes.SHA256()))


SERVICE_KEY = protocol.ServiceKey.generate()


def _verifier(key: ec.EllipticCurvePrivateKey) -> protocol.RequestVerifier:
    return protocol.RequestVerifier(key.public_key(), max_age_s=60, service_key=SERVICE_KEY)


def _encode(key: ec.EllipticCurvePrivateKey, op: str, body: dict[str, str]) -> bytes:
    return protocol.encode_request(
        op, body, _sign(key), SERVICE_KEY.recipient(), timestamp_ms=NOW_MS
    )


def test_round_trip(key: ec.EllipticCurvePrivateKey) -> None:
    message = _encode(key, "xpub", {"path": "m/1"})
    request = _verifier(key).verify(message, now_ms=NOW_MS + 59_000)
    assert (request.op, request.body, request.encrypted) == ("xpub", {"path": "m/1"}, True)


@pytest.mark.parametrize("offset", [5, 20, 22, 30, 35, 40, 50, 60])
def test_every_signed_byte_is_covered(key: ec.EllipticCurvePrivateKey, offset: int) -> None:
    """Request id (5..20), timestamp (21..28), op (30..33), key id (34..41), body length,
    HPKE enc and ciphertext: a flipped byte breaks the signature."""
    message = bytearray(_encode(key, "xpub", {"path": "m/1"}))
    message[offset] ^= 0x01
    with pytest.raises(RequestRefused) as info:
        _verifier(key).verify(bytes(message), now_ms=NOW_MS)
    assert info.value.reason in (protocol.REFUSED_BAD_SIGNATURE, protocol.REFUSED_MALFORMED)


def test_replay_and_staleness(key: ec.EllipticCurvePrivateKey) -> None:
    verifier = _verifier(key)
    message = _encode(key, "ping", {})
    verifier.verify(message, now_ms=NOW_MS)
    with pytest.raises(RequestRefused, match=protocol.REFUSED_REPLAY):
        verifier.verify(message, now_ms=NOW_MS + 1)
    late = _encode(key, "ping", {})
    with pytest.raises(RequestRefused, match=protocol.REFUSED_STALE):
        verifier.verify(late, now_ms=NOW_MS + 61_000)


def test_extended_request_refused(key: ec.EllipticCurvePrivateKey) -> None:
    message = _encode(key, "ping", {})
    with pytest.raises(RequestRefused, match=protocol.REFUSED_MALFORMED):
        _verifier(key).verify(message + b"\x00", now_ms=NOW_MS)


LETTER = PinLetterData(bytes.fromhex("0102030405060708"), "Jo", "1 Road", b"123456", b"12345678")


@pytest.fixture(scope="module")
def mailer() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def letter(key: ec.EllipticCurvePrivateKey, mailer: rsa.RSAPrivateKey) -> bytes:
    cert = make_issuer_certificate(key.public_key(), _sign(key))
    return build_pin_letter(LETTER, mailer.public_key(), _sign(key), cert)


def test_letter_round_trip(
    letter: bytes, key: ec.EllipticCurvePrivateKey, mailer: rsa.RSAPrivateKey
) -> None:
    opened = open_pin_letter(letter, mailer, key.public_key())
    assert (opened.pin, opened.puk, opened.serial) == (LETTER.pin, LETTER.puk, LETTER.serial)
    assert "123456" not in repr(opened)


def test_letter_from_another_issuer_refused(letter: bytes, mailer: rsa.RSAPrivateKey) -> None:
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(VerificationError):
        open_pin_letter(letter, mailer, other)


def test_tampered_letter_refused(
    letter: bytes, key: ec.EllipticCurvePrivateKey, mailer: rsa.RSAPrivateKey
) -> None:
    tampered = bytearray(letter)
    tampered[len(letter) // 3] ^= 0x01  # inside the envelope
    with pytest.raises((VerificationError, PinLetterError)):
        open_pin_letter(bytes(tampered), mailer, key.public_key())


def test_other_mailer_cannot_open(letter: bytes, key: ec.EllipticCurvePrivateKey) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(PinLetterError):
        open_pin_letter(letter, other, key.public_key())
