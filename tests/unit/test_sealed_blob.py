"""Sealed blob: round trip, every tamper refused, payload budget, secrets hidden."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from sealcard.crypto import sealed_blob as sb
from sealcard.crypto.low_s import P256_ORDER, is_low_s, to_low_s
from sealcard.crypto.sealed_blob import (
    BadSignatureError,
    DecryptionError,
    PayloadTooLargeError,
    SealedBlobError,
    SealedPayload,
    WrongCardError,
)

SERIAL = bytes.fromhex("0102030405060708")
OTHER_SERIAL = bytes.fromhex("0102030405060709")


@pytest.fixture(scope="module")
def device_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def issuer_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _auth_point() -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def _payload(pin: bool = True) -> SealedPayload:
    return SealedPayload(
        user_private_key=os.urandom(31) + b"\x01",
        device_auth_public_key=_auth_point(),
        pin=b"123456" if pin else None,
        puk=b"12345678" if pin else None,
    )


def _signer(key: ec.EllipticCurvePrivateKey) -> Callable[[bytes], bytes]:
    return lambda message: key.sign(message, ec.ECDSA(hashes.SHA256()))


@pytest.fixture(scope="module")
def sealed(
    device_key: rsa.RSAPrivateKey, issuer_key: ec.EllipticCurvePrivateKey
) -> tuple[bytes, SealedPayload]:
    payload = _payload()
    return sb.seal(payload, SERIAL, device_key.public_key(), _signer(issuer_key)), payload


def test_round_trip(
    sealed: tuple[bytes, SealedPayload],
    device_key: rsa.RSAPrivateKey,
    issuer_key: ec.EllipticCurvePrivateKey,
) -> None:
    blob, payload = sealed
    assert sb.open_blob(blob, SERIAL, device_key, issuer_key.public_key()) == payload


def test_round_trip_without_pin(
    device_key: rsa.RSAPrivateKey, issuer_key: ec.EllipticCurvePrivateKey
) -> None:
    payload = _payload(pin=False)
    blob = sb.seal(payload, SERIAL, device_key.public_key(), _signer(issuer_key))
    opened = sb.open_blob(blob, SERIAL, device_key, issuer_key.public_key())
    assert opened.pin is None and opened.puk is None
    assert opened.user_private_key == payload.user_private_key


def test_layout_matches_the_document(sealed: tuple[bytes, SealedPayload]) -> None:
    blob, _ = sealed
    parsed = sb.parse(blob)
    assert blob[:3] == b"SCB" and blob[3] == sb.FORMAT_VERSION and blob[4] == len(SERIAL)
    assert parsed.serial == SERIAL
    assert parsed.signed_message == blob[: 7 + len(SERIAL) + sb.CIPHERTEXT_LENGTH]
    assert blob[len(parsed.signed_message)] == len(parsed.signature)
    # nothing after the signature; DER of a low-S P-256 signature is at most 71 bytes (r 33
    # with its sign byte, s 32), and shorter now and then (r or s with leading zero bytes: a
    # fixed 342..344 failed once in a few hundred runs, at 341)
    assert len(blob) == len(parsed.signed_message) + 1 + len(parsed.signature)
    assert 8 <= len(parsed.signature) <= 71


# (description, mutation) pairs: each makes a blob that must be refused.
def _flip(index: int) -> Callable[[bytes], bytes]:
    def mutate(blob: bytes) -> bytes:
        return blob[:index] + bytes([blob[index] ^ 0x01]) + blob[index + 1 :]

    return mutate


SERIAL_AT = 5
CIPHERTEXT_AT = 5 + len(SERIAL) + 2

TAMPERS: list[tuple[str, Callable[[bytes], bytes], type[Exception]]] = [
    ("magic", _flip(0), SealedBlobError),
    ("version", _flip(3), SealedBlobError),
    ("serial length", _flip(4), SealedBlobError),
    ("ciphertext length", _flip(5 + len(SERIAL) + 1), SealedBlobError),
    ("first ciphertext byte", _flip(CIPHERTEXT_AT), BadSignatureError),
    ("last ciphertext byte", _flip(CIPHERTEXT_AT + 255), BadSignatureError),
    ("signature length", _flip(CIPHERTEXT_AT + 256), SealedBlobError),
    ("signature byte", lambda b: _flip(len(b) - 1)(b), BadSignatureError),
    ("signature DER body", lambda b: _flip(CIPHERTEXT_AT + 256 + 10)(b), BadSignatureError),
    ("truncated by one", lambda b: b[:-1], SealedBlobError),
    ("truncated to header", lambda b: b[:5], SealedBlobError),
    ("truncated mid-ciphertext", lambda b: b[:100], SealedBlobError),
    ("empty", lambda b: b"", SealedBlobError),
    ("extended by one byte", lambda b: b + b"\x00", SealedBlobError),
]


@pytest.mark.parametrize(("what", "mutate", "error"), TAMPERS, ids=[t[0] for t in TAMPERS])
def test_tamper_refused(
    what: str,
    mutate: Callable[[bytes], bytes],
    error: type[Exception],
    sealed: tuple[bytes, SealedPayload],
    device_key: rsa.RSAPrivateKey,
    issuer_key: ec.EllipticCurvePrivateKey,
) -> None:
    blob, _ = sealed
    bad = mutate(blob)
    assert bad != blob
    with pytest.raises(error):
        sb.open_blob(bad, SERIAL, device_key, issuer_key.public_key())
    with pytest.raises((SealedBlobError, BadSignatureError)):
        sb.verify_signature(bad, issuer_key.public_key())


def test_tampered_serial_is_refused_as_wrong_card_and_bad_signature(
    sealed: tuple[bytes, SealedPayload],
    device_key: rsa.RSAPrivateKey,
    issuer_key: ec.EllipticCurvePrivateKey,
) -> None:
    blob, _ = sealed
    bad = _flip(SERIAL_AT + len(SERIAL) - 1)(blob)
    assert sb.parse(bad).serial == OTHER_SERIAL
    with pytest.raises(WrongCardError):
        sb.open_blob(bad, SERIAL, device_key, issuer_key.public_key())
    with pytest.raises(BadSignatureError):
        sb.open_blob(bad, OTHER_SERIAL, device_key, issuer_key.public_key())


def test_blob_for_another_card_refused(
    sealed: tuple[bytes, SealedPayload],
    device_key: rsa.RSAPrivateKey,
    issuer_key: ec.EllipticCurvePrivateKey,
) -> None:
    blob, _ = sealed
    with pytest.raises(WrongCardError):
        sb.open_blob(blob, OTHER_SERIAL, device_key, issuer_key.public_key())


def test_other_issuer_refused(
    sealed: tuple[bytes, SealedPayload], device_key: rsa.RSAPrivateKey
) -> None:
    blob, _ = sealed
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(BadSignatureError):
        sb.open_blob(blob, SERIAL, device_key, other)


def test_unsigned_blob_refused(
    device_key: rsa.RSAPrivateKey, issuer_key: ec.EllipticCurvePrivateKey
) -> None:
    """A well-formed blob whose 'signature' is not one (bytes of the right length)."""
    ciphertext = sb.encrypt_payload(_payload(), device_key.public_key())
    with pytest.raises(SealedBlobError, match="not a DER ECDSA signature"):
        sb.assemble(SERIAL, ciphertext, bytes(70))  # the issuer side never makes one
    blob = sb.signed_message(SERIAL, ciphertext) + bytes([70]) + bytes(70)
    with pytest.raises(BadSignatureError):
        sb.open_blob(blob, SERIAL, device_key, issuer_key.public_key())


def test_wrong_device_key_fails_decryption(
    sealed: tuple[bytes, SealedPayload], issuer_key: ec.EllipticCurvePrivateKey
) -> None:
    blob, _ = sealed
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(DecryptionError):
        sb.open_blob(blob, SERIAL, other, issuer_key.public_key())


def test_payload_budget_enforced() -> None:
    assert sb.PAYLOAD_MAX_LENGTH == 190
    largest = SealedPayload(b"\x01" * 32, _auth_point(), b"1" * 12, b"2" * 12)
    assert len(sb.encode_payload(largest)) == 129
    with pytest.raises(PayloadTooLargeError):
        sb.decode_payload(sb.encode_payload(largest) + b"\x05\x3d" + bytes(61))


def test_encrypt_refuses_a_key_other_than_rsa_2048() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    with pytest.raises(SealedBlobError, match="RSA-2048"):
        sb.encrypt_payload(_payload(), small)


@pytest.mark.parametrize(
    "payload",
    [
        SealedPayload(b"\x00" * 32, bytes([4]) + bytes(64)),
        SealedPayload(bytes.fromhex("ff" * 32), bytes([4]) + bytes(64)),
        SealedPayload(b"\x01" * 31, bytes([4]) + bytes(64)),
    ],
    ids=["zero key", "key >= n", "short key"],
)
def test_invalid_user_key_refused(payload: SealedPayload) -> None:
    with pytest.raises(SealedBlobError):
        sb.encode_payload(payload)


@pytest.mark.parametrize(
    ("pin", "puk"),
    [
        (b"123456", None),
        (None, b"12345678"),
        (b"123", b"12345678"),
        (b"12a456", b"12345678"),
        (b"123456", b"1234567"),
        (b"1" * 13, b"1" * 12),
    ],
)
def test_pin_puk_rules(pin: bytes | None, puk: bytes | None) -> None:
    with pytest.raises(SealedBlobError):
        sb.encode_payload(SealedPayload(b"\x01" * 32, _auth_point(), pin, puk))


def test_device_auth_key_must_be_on_p256() -> None:
    point = bytearray(_auth_point())
    point[-1] ^= 0x01
    with pytest.raises(SealedBlobError, match="P-256"):
        sb.encode_payload(SealedPayload(b"\x01" * 32, bytes(point)))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p[:-1],
        lambda p: p + b"\x01",
        lambda p: p[34:36] + p[:34] + p[36:],
        lambda p: p[:34] + p[:34] + p[34:],
        lambda p: bytes([0x09]) + p[1:],
    ],
    ids=["truncated", "trailing", "order", "repeated", "unknown tag"],
)
def test_decode_payload_is_strict(mutate: Callable[[bytes], bytes]) -> None:
    encoded = sb.encode_payload(_payload())
    assert sb.decode_payload(encoded) is not None
    with pytest.raises(SealedBlobError):
        sb.decode_payload(mutate(encoded))


def test_repr_hides_secrets() -> None:
    payload = _payload()
    text = repr(payload)
    assert payload.user_private_key.hex() not in text
    assert "123456" not in text
    assert "12345678" not in text
    assert payload.device_auth_public_key.hex() in text


def _high_s_twin(blob: bytes) -> bytes:
    """The same blob with (r, n - s) for the issuer signature: it verifies as ECDSA too."""
    parsed = sb.parse(blob)
    r, s = decode_dss_signature(parsed.signature)
    twin = encode_dss_signature(r, P256_ORDER - s)
    return parsed.signed_message + bytes([len(twin)]) + twin


def test_blobs_carry_low_s_and_the_high_s_twin_is_refused(
    device_key: rsa.RSAPrivateKey, issuer_key: ec.EllipticCurvePrivateKey
) -> None:
    """Every blob gets the low-S signature whatever the signer gave; its high-S twin (a second
    blob with the same payload, and a valid ECDSA signature) is refused."""
    for _ in range(16):  # the signer's s is high half the time
        blob = sb.seal(_payload(), SERIAL, device_key.public_key(), _signer(issuer_key))
        assert is_low_s(sb.parse(blob).signature)
        sb.verify_signature(blob, issuer_key.public_key())
        twin = _high_s_twin(blob)
        assert not is_low_s(sb.parse(twin).signature)
        issuer_key.public_key().verify(  # the twin is a valid ECDSA signature ...
            sb.parse(twin).signature, sb.parse(twin).signed_message, ec.ECDSA(hashes.SHA256())
        )
        with pytest.raises(BadSignatureError, match="low-S"):  # ... and still refused
            sb.verify_signature(twin, issuer_key.public_key())


def test_low_s_helpers() -> None:
    half = P256_ORDER // 2
    low = encode_dss_signature(7, half)
    high = encode_dss_signature(7, half + 1)
    assert is_low_s(low) and not is_low_s(high)
    assert to_low_s(low) == low
    assert to_low_s(high) == encode_dss_signature(7, P256_ORDER - half - 1)
    with pytest.raises(ValueError):
        is_low_s(b"\x30\x00")
