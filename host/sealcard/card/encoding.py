"""The applet's wire encodings: BER-TLV with one-byte tags, RSA TLV pairs, EC points.

Decoders raise `CardResponseError` (the card said 9000 but the bytes do not
parse); encoders raise TypeError/ValueError for keys the card cannot take.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sealcard.card.constants import (
    EC_POINT_LENGTH,
    RSA_MODULUS_LENGTH,
    Capability,
    RsaTag,
    State,
    Tag,
)
from sealcard.card.errors import CardResponseError, SecretFormatError

_LONG_FORM: Final = 0x80
_MAX_LENGTH_BYTES: Final = 2
_VERSION_LENGTH: Final = 2
_STATE_LENGTH: Final = 1
_CAPABILITIES_LENGTH: Final = 2


def encode_length(length: int) -> bytes:
    """BER definite length: 1 byte below 128, else 81 xx or 82 xx xx."""
    if length < _LONG_FORM:
        return bytes((length,))
    if length <= 0xFF:
        return bytes((0x81, length))
    if length <= 0xFFFF:
        return bytes((0x82,)) + length.to_bytes(2, "big")
    raise ValueError(f"TLV length {length} is over 65535")


def encode_tlv(tag: int, value: bytes) -> bytes:
    return bytes((tag,)) + encode_length(len(value)) + value


def iter_tlv(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Yield (tag, value) for each one-byte-tag BER-TLV in `data`."""
    pos = 0
    while pos < len(data):
        tag = data[pos]
        pos += 1
        if pos >= len(data):
            raise CardResponseError(f"TLV {tag:02X} has no length")
        first = data[pos]
        pos += 1
        if first < _LONG_FORM:
            length = first
        else:
            count = first & 0x7F
            if not 1 <= count <= _MAX_LENGTH_BYTES or pos + count > len(data):
                raise CardResponseError(f"TLV {tag:02X} has a bad length field")
            length = int.from_bytes(data[pos : pos + count], "big")
            pos += count
        if pos + length > len(data):
            raise CardResponseError(f"TLV {tag:02X} says {length} bytes, fewer follow")
        yield tag, data[pos : pos + length]
        pos += length


def parse_tlv(data: bytes) -> dict[int, bytes]:
    """All TLVs of `data` by tag; a repeated tag is an error."""
    out: dict[int, bytes] = {}
    for tag, value in iter_tlv(data):
        if tag in out:
            raise CardResponseError(f"TLV tag {tag:02X} appears twice")
        out[tag] = value
    return out


def decode_rsa_public_key(data: bytes) -> rsa.RSAPublicKey:
    """`81 <modulus>` `82 <exponent>` -> an RSA public key."""
    fields = parse_tlv(data)
    modulus = fields.get(RsaTag.MODULUS)
    exponent = fields.get(RsaTag.EXPONENT)
    if modulus is None or exponent is None or set(fields) != {RsaTag.MODULUS, RsaTag.EXPONENT}:
        raise CardResponseError("RSA public key is not exactly TLVs 81 (modulus), 82 (exponent)")
    if len(modulus) != RSA_MODULUS_LENGTH or modulus[0] == 0:
        raise CardResponseError(f"RSA modulus is {len(modulus)} bytes, expected a 2048-bit one")
    try:
        e, n = int.from_bytes(exponent, "big"), int.from_bytes(modulus, "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError as exc:
        raise CardResponseError(f"RSA public key refused: {exc}") from exc


def encode_rsa_public_key(key: rsa.RSAPublicKey) -> bytes:
    """An RSA-2048 public key in the card's TLV pair (exponent minimal big-endian)."""
    if key.key_size != RSA_MODULUS_LENGTH * 8:
        raise ValueError(f"the card holds RSA-2048 keys, got {key.key_size} bits")
    numbers = key.public_numbers()
    return encode_tlv(RsaTag.MODULUS, rsa_modulus_bytes(key)) + encode_tlv(
        RsaTag.EXPONENT, minimal_bytes(numbers.e)
    )


def rsa_modulus_bytes(key: rsa.RSAPublicKey) -> bytes:
    return key.public_numbers().n.to_bytes(RSA_MODULUS_LENGTH, "big")


def minimal_bytes(value: int) -> bytes:
    """Big-endian bytes of a positive integer without leading zeros."""
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def decode_ec_point(data: bytes) -> ec.EllipticCurvePublicKey:
    """A P-256 uncompressed point (04 || X || Y) -> an EC public key (checked on the curve)."""
    if len(data) != EC_POINT_LENGTH:
        raise CardResponseError(f"EC point is {len(data)} bytes, expected {EC_POINT_LENGTH}")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), data)
    except ValueError as exc:
        raise CardResponseError(f"EC point is not on P-256: {exc}") from exc


def encode_ec_point(key: ec.EllipticCurvePublicKey) -> bytes:
    """A P-256 public key as the 65-byte uncompressed point the card takes."""
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise TypeError(f"expected an EC public key, got {type(key).__name__}")
    if not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"the card takes P-256 keys, got {key.curve.name}")
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


@dataclass(frozen=True)
class CardStatus:
    """What SELECT (or GET DATA DO_STATUS) reports."""

    version: int
    state: State | int
    capabilities: Capability
    serial: bytes | None

    @property
    def state_name(self) -> str:
        return self.state.name if isinstance(self.state, State) else f"UNKNOWN_{self.state:02X}"

    @property
    def serial_hex(self) -> str | None:
        return None if self.serial is None else self.serial.hex().upper()


def decode_status(data: bytes) -> CardStatus:
    """Parse the SELECT answer's TLVs (80 version, 81 state, 82 capabilities, 83 serial)."""
    fields = parse_tlv(data)
    version = fields.get(Tag.VERSION)
    state = fields.get(Tag.STATE)
    caps = fields.get(Tag.CAPABILITIES)
    if version is None or len(version) != _VERSION_LENGTH:
        raise CardResponseError("status lacks a 2-byte version (tag 80)")
    if state is None or len(state) != _STATE_LENGTH:
        raise CardResponseError("status lacks a 1-byte state (tag 81)")
    if caps is None or len(caps) != _CAPABILITIES_LENGTH:
        raise CardResponseError("status lacks 2-byte capabilities (tag 82)")
    state_value: State | int
    try:
        state_value = State(state[0])
    except ValueError:
        state_value = state[0]
    return CardStatus(
        version=int.from_bytes(version, "big"),
        state=state_value,
        capabilities=Capability(int.from_bytes(caps, "big")),
        serial=fields.get(Tag.SERIAL),
    )


# ---- PIN, PUK and the issuer command message (issue 3) ---------------------------------------

Secret = bytes | bytearray | str
"""A PIN or PUK as the caller holds it: ASCII digits, as bytes or str."""

ISSUER_COMMAND_MAGIC: Final = b"SCIC"
_PIN_STATUS_LENGTH: Final = 4
_PIN_STATUS_LENGTH_V1_0: Final = 3


def digits(value: Secret, name: str, low: int, high: int) -> bytes:
    """A PIN/PUK as ASCII digit bytes; SecretFormatError (a ValueError) naming the rule, never
    the value."""
    if isinstance(value, str):
        try:
            raw = value.encode("ascii")
        except UnicodeEncodeError:
            raise SecretFormatError(f"a {name} is {low} to {high} digits (0-9)") from None
    elif isinstance(value, bytes | bytearray):
        raw = bytes(value)
    else:
        raise TypeError(f"{name} must be bytes or str")
    if not low <= len(raw) <= high or not raw.isdigit():
        raise SecretFormatError(f"a {name} is {low} to {high} digits (0-9)")
    return raw


@dataclass(frozen=True)
class PinStatus:
    """GET DATA DO_PIN_STATUS: whether a PIN is set, the tries left on PIN and PUK, and whether
    the card holds a usable user key (None: an applet before 1.1 does not say)."""

    pin_set: bool
    pin_tries_remaining: int
    puk_tries_remaining: int
    user_key_present: bool | None = None

    @property
    def pin_blocked(self) -> bool:
        return self.pin_set and self.pin_tries_remaining == 0

    @property
    def puk_blocked(self) -> bool:
        return self.pin_set and self.puk_tries_remaining == 0


def decode_pin_status(data: bytes) -> PinStatus:
    """PIN set, PIN tries, PUK tries [, user key present] (docs/apdu.md, DO_PIN_STATUS)."""
    if len(data) == _PIN_STATUS_LENGTH_V1_0:
        return PinStatus(bool(data[0]), data[1], data[2])
    if len(data) != _PIN_STATUS_LENGTH:
        raise CardResponseError(f"PIN status is {len(data)} bytes, expected {_PIN_STATUS_LENGTH}")
    return PinStatus(bool(data[0]), data[1], data[2], bool(data[3]))


def issuer_command_message(
    serial: bytes, challenge: bytes, ins: int, p1: int, p2: int, body: bytes
) -> bytes:
    """What the issuer signs for ISSUER COMMAND (docs/apdu.md):

    "SCIC" || len(serial) || serial || challenge (16) || INS || P1 || P2 || len(body) || body
    """
    if len(body) > 0xFF:
        raise ValueError("an issuer command body is at most 255 bytes")
    if len(serial) > 0xFF:
        raise ValueError("serial too long")
    return b"".join(
        (
            ISSUER_COMMAND_MAGIC,
            bytes((len(serial),)),
            serial,
            challenge,
            bytes((ins, p1, p2, len(body))),
            body,
        )
    )


_PLATFORM_LENGTH: Final = 8


@dataclass(frozen=True)
class AppletPlatform:
    """GET DATA DO_PLATFORM: the JavaCard version and free memory as the applet sees them.

    Each memory figure is a JavaCard short: 32767 means "32767 bytes or more".
    """

    javacard_major: int
    javacard_minor: int
    free_persistent: int
    free_transient_reset: int
    free_transient_deselect: int

    @property
    def javacard_version(self) -> str:
        return f"{self.javacard_major}.{self.javacard_minor}"


def decode_platform(data: bytes) -> AppletPlatform:
    """Parse DO_PLATFORM: version (major, minor) and three 2-byte free-memory figures."""
    if len(data) != _PLATFORM_LENGTH:
        raise CardResponseError(f"platform data is {len(data)} bytes, not {_PLATFORM_LENGTH}")
    return AppletPlatform(
        javacard_major=data[0],
        javacard_minor=data[1],
        free_persistent=int.from_bytes(data[2:4], "big"),
        free_transient_reset=int.from_bytes(data[4:6], "big"),
        free_transient_deselect=int.from_bytes(data[6:8], "big"),
    )
