"""The sealed blob (docs/sealed-blob.md, format version 1): seal, parse, verify, open.

Pure functions, no I/O. The issuer signature is made by a callable (the issuer HSM signs
in its token); the RSA-OAEP encryption to the card's device key is done here in software by
the one process that holds the payload in clear.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from sealcard.crypto.low_s import is_low_s, to_low_s
from sealcard.errors import SealcardError, VerificationError

MAGIC = b"SCB"
FORMAT_VERSION = 0x01
SERIAL_MIN_LENGTH = 4
SERIAL_MAX_LENGTH = 16
CIPHERTEXT_LENGTH = 256
RSA_KEY_BITS = 2048
SIGNATURE_MIN_LENGTH = 8
SIGNATURE_MAX_LENGTH = 72
PAYLOAD_MAX_LENGTH = CIPHERTEXT_LENGTH - 2 * 32 - 2  # OAEP with SHA-256: 190 bytes

PT_USER_KEY = 0x01
PT_DEVICE_AUTH_KEY = 0x02
PT_PIN = 0x03
PT_PUK = 0x04

USER_KEY_LENGTH = 32
DEVICE_AUTH_KEY_LENGTH = 65
UNCOMPRESSED_POINT_PREFIX = 0x04
PIN_MIN_LENGTH = 4
PIN_MAX_LENGTH = 12
PUK_MIN_LENGTH = 8
PUK_MAX_LENGTH = 12

SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

_HEADER_LENGTH = len(MAGIC) + 2  # magic, version, serial length


class SealedBlobError(ValueError, SealcardError):
    """A blob or payload that does not follow the format (malformed)."""


class PayloadTooLargeError(SealedBlobError):
    """The payload exceeds the 190-byte budget of one RSA-2048 OAEP-SHA-256 block."""


class WrongCardError(SealedBlobError):
    """The blob was sealed for another card serial."""


class BadSignatureError(VerificationError):
    """The issuer signature over the blob does not verify."""


class DecryptionError(SealedBlobError):
    """RSA-OAEP decryption failed (every cause looks the same)."""


def _oaep() -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def _is_p256_point(point: bytes) -> bool:
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        return False
    return True


def _check_digits(value: bytes, name: str, low: int, high: int) -> None:
    if not low <= len(value) <= high or not value.isdigit():
        raise SealedBlobError(f"{name} must be {low} to {high} ASCII digits")


@dataclass(frozen=True, repr=False)
class SealedPayload:
    """What the card receives inside the ciphertext. ``repr`` hides the key, PIN and PUK."""

    user_private_key: bytes
    device_auth_public_key: bytes
    pin: bytes | None = None
    puk: bytes | None = None

    def __repr__(self) -> str:
        return (
            "SealedPayload(user_private_key=<secret>, "
            f"device_auth_public_key={self.device_auth_public_key.hex()}, "
            f"pin={'<secret>' if self.pin is not None else None}, "
            f"puk={'<secret>' if self.puk is not None else None})"
        )

    def validate(self, *, check_point: bool = True) -> None:
        """Raise SealedBlobError unless every field is as docs/sealed-blob.md requires.

        ``check_point=False`` skips the curve check of the device authentication key (its
        length and prefix are still checked): for the issuer HSM, which takes the key from the
        issuer-system HSM that just made it; the card checks the point again anyway."""
        if len(self.user_private_key) != USER_KEY_LENGTH:
            raise SealedBlobError("user private key must be 32 bytes")
        if not 0 < int.from_bytes(self.user_private_key, "big") < SECP256K1_ORDER:
            raise SealedBlobError("user private key is not a valid secp256k1 scalar")
        if (
            len(self.device_auth_public_key) != DEVICE_AUTH_KEY_LENGTH
            or self.device_auth_public_key[0] != UNCOMPRESSED_POINT_PREFIX
            or (check_point and not _is_p256_point(self.device_auth_public_key))
        ):
            raise SealedBlobError("device authentication key must be an uncompressed P-256 point")
        if (self.pin is None) != (self.puk is None):
            raise SealedBlobError("PIN and PUK come together or not at all")
        if self.pin is not None:
            _check_digits(self.pin, "PIN", PIN_MIN_LENGTH, PIN_MAX_LENGTH)
        if self.puk is not None:
            _check_digits(self.puk, "PUK", PUK_MIN_LENGTH, PUK_MAX_LENGTH)


def encode_payload(payload: SealedPayload, *, check_point: bool = True) -> bytes:
    """Payload TLVs (one-byte tags and lengths) in the fixed order; checks the 190-byte budget."""
    payload.validate(check_point=check_point)
    fields = [
        (PT_USER_KEY, payload.user_private_key),
        (PT_DEVICE_AUTH_KEY, payload.device_auth_public_key),
    ]
    if payload.pin is not None and payload.puk is not None:
        fields += [(PT_PIN, payload.pin), (PT_PUK, payload.puk)]
    encoded = b"".join(bytes([tag, len(value)]) + value for tag, value in fields)
    if len(encoded) > PAYLOAD_MAX_LENGTH:
        raise PayloadTooLargeError(
            f"payload of {len(encoded)} bytes exceeds the {PAYLOAD_MAX_LENGTH}-byte budget"
        )
    return encoded


def decode_payload(data: bytes) -> SealedPayload:
    """Strict inverse of :func:`encode_payload`: order, uniqueness, lengths, values."""
    if len(data) > PAYLOAD_MAX_LENGTH:
        raise PayloadTooLargeError("payload exceeds the 190-byte budget")
    values: dict[int, bytes] = {}
    offset = 0
    last_tag = 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise SealedBlobError("truncated payload TLV header")
        tag, length = data[offset], data[offset + 1]
        if tag not in (PT_USER_KEY, PT_DEVICE_AUTH_KEY, PT_PIN, PT_PUK):
            raise SealedBlobError(f"unknown payload tag {tag:#04x}")
        if tag <= last_tag:
            raise SealedBlobError("payload tags out of order or repeated")
        end = offset + 2 + length
        if end > len(data):
            raise SealedBlobError("truncated payload TLV value")
        values[tag] = data[offset + 2 : end]
        last_tag = tag
        offset = end
    if PT_USER_KEY not in values or PT_DEVICE_AUTH_KEY not in values:
        raise SealedBlobError("payload lacks the user key or the device authentication key")
    payload = SealedPayload(
        values[PT_USER_KEY], values[PT_DEVICE_AUTH_KEY], values.get(PT_PIN), values.get(PT_PUK)
    )
    payload.validate()
    return payload


@dataclass(frozen=True)
class SealedBlob:
    """A parsed blob: its fields and the exact bytes the issuer signed."""

    version: int
    serial: bytes
    ciphertext: bytes
    signature: bytes
    signed_message: bytes


def _check_serial(serial: bytes) -> None:
    if not SERIAL_MIN_LENGTH <= len(serial) <= SERIAL_MAX_LENGTH:
        raise SealedBlobError(
            f"card serial must be {SERIAL_MIN_LENGTH} to {SERIAL_MAX_LENGTH} bytes"
        )


def signed_message(serial: bytes, ciphertext: bytes) -> bytes:
    """Bytes 0 .. 7+n+c of the blob: magic, version, serial length, serial, c, ciphertext."""
    _check_serial(serial)
    if len(ciphertext) != CIPHERTEXT_LENGTH:
        raise SealedBlobError("ciphertext must be 256 bytes")
    return (
        MAGIC
        + bytes([FORMAT_VERSION, len(serial)])
        + serial
        + len(ciphertext).to_bytes(2, "big")
        + ciphertext
    )


_OAEP_SHA256 = _oaep()  # immutable: built once


def encrypt_payload(
    payload: SealedPayload, device_public_key: rsa.RSAPublicKey, *, check_point: bool = True
) -> bytes:
    """RSA-2048 OAEP (SHA-256, MGF1-SHA-256, empty label) of the encoded payload."""
    if not isinstance(device_public_key, rsa.RSAPublicKey):
        raise TypeError("device_public_key must be an RSA public key")
    if device_public_key.key_size != RSA_KEY_BITS:
        raise SealedBlobError("the card's device key must be RSA-2048")
    return device_public_key.encrypt(encode_payload(payload, check_point=check_point), _OAEP_SHA256)


def assemble(serial: bytes, ciphertext: bytes, signature: bytes) -> bytes:
    """Put a blob together from its signed message parts and the DER signature.

    The signature goes in its low-S form (s <= n/2; the issuer HSM's PKCS#11 signature may
    have either): the card and `verify_signature` refuse the high-S twin.
    """
    if not SIGNATURE_MIN_LENGTH <= len(signature) <= SIGNATURE_MAX_LENGTH:
        raise SealedBlobError("issuer signature must be 8 to 72 bytes of DER")
    try:
        signature = to_low_s(signature)
    except ValueError:
        raise SealedBlobError("the issuer signature is not a DER ECDSA signature") from None
    return signed_message(serial, ciphertext) + bytes([len(signature)]) + signature


def seal(
    payload: SealedPayload,
    serial: bytes,
    device_public_key: rsa.RSAPublicKey,
    sign: Callable[[bytes], bytes],
) -> bytes:
    """Encrypt the payload to the card and have ``sign`` (ECDSA P-256 SHA-256, DER) sign it."""
    ciphertext = encrypt_payload(payload, device_public_key)
    message = signed_message(serial, ciphertext)
    return assemble(serial, ciphertext, sign(message))


def parse(blob: bytes) -> SealedBlob:
    """Check the layout (magic, version, every length, nothing after the signature)."""
    if len(blob) < _HEADER_LENGTH or blob[: len(MAGIC)] != MAGIC:
        raise SealedBlobError("not a sealed blob (bad magic)")
    version, serial_length = blob[3], blob[4]
    if version != FORMAT_VERSION:
        raise SealedBlobError(f"unsupported sealed blob version {version}")
    if not SERIAL_MIN_LENGTH <= serial_length <= SERIAL_MAX_LENGTH:
        raise SealedBlobError("serial length out of range")
    offset = _HEADER_LENGTH + serial_length
    if len(blob) < offset + 2:
        raise SealedBlobError("truncated blob")
    serial = blob[_HEADER_LENGTH:offset]
    ciphertext_length = int.from_bytes(blob[offset : offset + 2], "big")
    if ciphertext_length != CIPHERTEXT_LENGTH:
        raise SealedBlobError("ciphertext length must be 256")
    offset += 2
    ciphertext = blob[offset : offset + ciphertext_length]
    offset += ciphertext_length
    if len(blob) < offset + 1:
        raise SealedBlobError("truncated blob")
    signature_length = blob[offset]
    if not SIGNATURE_MIN_LENGTH <= signature_length <= SIGNATURE_MAX_LENGTH:
        raise SealedBlobError("signature length out of range")
    signature = blob[offset + 1 : offset + 1 + signature_length]
    if len(signature) != signature_length:
        raise SealedBlobError("truncated blob")
    if len(blob) != offset + 1 + signature_length:
        raise SealedBlobError("bytes after the signature")
    return SealedBlob(version, serial, ciphertext, signature, blob[:offset])


def verify_signature(
    blob: bytes | SealedBlob, issuer_public_key: ec.EllipticCurvePublicKey
) -> SealedBlob:
    """Raise BadSignatureError unless the issuer signed this blob, in low-S form (as the card
    requires: the high-S twin would be a second blob with the same payload); returns the
    parsed blob."""
    parsed = blob if isinstance(blob, SealedBlob) else parse(blob)
    try:
        issuer_public_key.verify(parsed.signature, parsed.signed_message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise BadSignatureError(
            "the issuer signature over the sealed blob does not verify"
        ) from None
    if not is_low_s(parsed.signature):
        raise BadSignatureError(
            "the issuer signature over the sealed blob is not in low-S form (s > n/2); the card "
            "refuses it"
        )
    return parsed


def open_blob(
    blob: bytes,
    serial: bytes,
    device_private_key: rsa.RSAPrivateKey,
    issuer_public_key: ec.EllipticCurvePublicKey,
) -> SealedPayload:
    """What the card does, for tests: layout, serial, signature, then decrypt and check."""
    parsed = parse(blob)
    if parsed.serial != serial:
        raise WrongCardError("the blob was sealed for another card")
    verify_signature(parsed, issuer_public_key)
    try:
        plaintext = device_private_key.decrypt(parsed.ciphertext, _oaep())
    except ValueError:
        raise DecryptionError("the blob could not be decrypted with this device key") from None
    return decode_payload(plaintext)
