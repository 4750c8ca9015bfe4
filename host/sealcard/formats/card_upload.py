"""The card's public data as the user system uploads it to the issuer's HTTPS API (JSON),
and back. Pure: no I/O. Keys are SubjectPublicKeyInfo DER, certificates DER, all base64
(standard alphabet); the serial is hex (docs/api.md)."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sealcard.errors import SealcardError
from sealcard.formats.attestation import CardPublicData

MAX_FIELD_BYTES: Final = 4096
MAX_SERIAL_BYTES: Final = 16
_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class CardUploadError(SealcardError):
    """An uploaded card description is malformed (names the field)."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(value: object, field: str, *, limit: int = MAX_FIELD_BYTES) -> bytes:
    """Strict base64 of at most `limit` bytes, or CardUploadError naming `field`."""
    if not isinstance(value, str) or len(value) > (limit * 4) // 3 + 4:
        raise CardUploadError(f"{field}: expected base64 text of at most {limit} bytes")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise CardUploadError(f"{field}: not base64") from None


def card_to_wire(card: CardPublicData) -> dict[str, Any]:
    """The JSON object for a card's public data."""

    def key(k: rsa.RSAPublicKey | ec.EllipticCurvePublicKey | None) -> str | None:
        return None if k is None else b64(k.public_bytes(*_SPKI))

    def cert(c: x509.Certificate | None) -> str | None:
        return None if c is None else b64(c.public_bytes(serialization.Encoding.DER))

    return {
        "serial": None if card.serial is None else card.serial.hex(),
        "state": card.state,
        "device_public_key": key(card.device_public_key),
        "issuer_auth_public_key": key(card.issuer_auth_public_key),
        "issuer_public_key": key(card.issuer_public_key),
        "device_key_certificate": cert(card.device_key_certificate),
        "issuer_auth_key_certificate": cert(card.issuer_auth_key_certificate),
        "signed_device_key": None
        if card.signed_device_key is None
        else b64(card.signed_device_key),
    }


def _public_key(value: object, field: str) -> Any:
    if value is None:
        return None
    try:
        return serialization.load_der_public_key(unb64(value, field))
    except (ValueError, TypeError):
        raise CardUploadError(f"{field}: not a DER SubjectPublicKeyInfo") from None


def _certificate(value: object, field: str) -> x509.Certificate | None:
    if value is None:
        return None
    try:
        return x509.load_der_x509_certificate(unb64(value, field))
    except ValueError:
        raise CardUploadError(f"{field}: not a DER X.509 certificate") from None


def parse_serial(value: object) -> bytes:
    """A card serial in hex (4..16 bytes)."""
    if not isinstance(value, str) or not 8 <= len(value) <= 2 * MAX_SERIAL_BYTES:
        raise CardUploadError("serial: expected 8 to 32 hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise CardUploadError("serial: not hex") from None


def card_from_wire(value: object) -> CardPublicData:
    """A card's public data from its JSON object, or CardUploadError naming the field."""
    if not isinstance(value, dict):
        raise CardUploadError("card: expected an object")
    state = value.get("state")
    if state is not None and (not isinstance(state, int) or not 0 <= state <= 0xFF):
        raise CardUploadError("state: expected a byte")
    device = _public_key(value.get("device_public_key"), "device_public_key")
    auth = _public_key(value.get("issuer_auth_public_key"), "issuer_auth_public_key")
    issuer = _public_key(value.get("issuer_public_key"), "issuer_public_key")
    if device is not None and not isinstance(device, rsa.RSAPublicKey):
        raise CardUploadError("device_public_key: expected an RSA key")
    for k, field in ((auth, "issuer_auth_public_key"), (issuer, "issuer_public_key")):
        if k is not None and not isinstance(k, ec.EllipticCurvePublicKey):
            raise CardUploadError(f"{field}: expected an EC key")
    signed = value.get("signed_device_key")
    return CardPublicData(
        serial=parse_serial(value.get("serial")),
        state=state,
        device_public_key=device,
        issuer_auth_public_key=auth,
        issuer_public_key=issuer,
        device_key_certificate=_certificate(
            value.get("device_key_certificate"), "device_key_certificate"
        ),
        issuer_auth_key_certificate=_certificate(
            value.get("issuer_auth_key_certificate"), "issuer_auth_key_certificate"
        ),
        signed_device_key=None if signed is None else unb64(signed, "signed_device_key"),
    )
