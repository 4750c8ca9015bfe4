"""BIP32 hierarchical deterministic keys on secp256k1, exactly as the BIP specifies.

Curve arithmetic is libsecp256k1 (through coincurve); this module does the HMAC chaining,
the scalar addition modulo n, the 78-byte serialization and its Base58Check text form, and
every validity check the BIP's test vector 5 asks of a parser.

Paths are written ``m/44'/0'/0'/0/7``; ``'``, ``h`` or ``H`` mark a hardened step.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from functools import cached_property

import coincurve

from sealcard.errors import SealcardError

HARDENED = 0x8000_0000
"""First hardened child index (2**31)."""

CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
"""n, the order of secp256k1's base point."""

FIELD_PRIME = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F

VERSION_MAINNET_PRIVATE = bytes.fromhex("0488ADE4")  # "xprv"
VERSION_MAINNET_PUBLIC = bytes.fromhex("0488B21E")  # "xpub"
VERSION_TESTNET_PRIVATE = bytes.fromhex("04358394")  # "tprv"
VERSION_TESTNET_PUBLIC = bytes.fromhex("043587CF")  # "tpub"

_PRIVATE_VERSIONS = (VERSION_MAINNET_PRIVATE, VERSION_TESTNET_PRIVATE)
_PUBLIC_VERSIONS = (VERSION_MAINNET_PUBLIC, VERSION_TESTNET_PUBLIC)

MASTER_HMAC_KEY = b"Bitcoin seed"
SEED_MIN_BYTES = 16
SEED_MAX_BYTES = 64
SERIALIZED_LENGTH = 78
KEY_LENGTH = 32
COMPRESSED_POINT_LENGTH = 33
MAX_DEPTH = 255

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}
_CHECKSUM_LENGTH = 4


class Bip32Error(ValueError, SealcardError):
    """An invalid seed, path, extended key or derivation result."""


# --------------------------------------------------------------------------- Base58Check


def b58encode(data: bytes) -> str:
    """Base58 (Bitcoin alphabet), leading zero bytes kept as '1'."""
    zeros = len(data) - len(data.lstrip(b"\x00"))
    number = int.from_bytes(data, "big")
    digits: list[str] = []
    while number:
        number, rem = divmod(number, 58)
        digits.append(_B58_ALPHABET[rem])
    return "1" * zeros + "".join(reversed(digits))


def b58decode(text: str) -> bytes:
    """Inverse of :func:`b58encode`; raises Bip32Error on a character outside the alphabet."""
    number = 0
    for char in text:
        try:
            number = number * 58 + _B58_INDEX[char]
        except KeyError:
            raise Bip32Error("invalid base58 character") from None
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\x00" * zeros + body


def _checksum(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()[:_CHECKSUM_LENGTH]


def b58check_encode(payload: bytes) -> str:
    return b58encode(payload + _checksum(payload))


def b58check_decode(text: str) -> bytes:
    raw = b58decode(text)
    if len(raw) < _CHECKSUM_LENGTH:
        raise Bip32Error("base58check string too short")
    payload, check = raw[:-_CHECKSUM_LENGTH], raw[-_CHECKSUM_LENGTH:]
    if not hmac.compare_digest(_checksum(payload), check):
        raise Bip32Error("invalid checksum")
    return payload


# --------------------------------------------------------------------------- paths


def parse_path(text: str) -> tuple[int, ...]:
    """``"m/44'/0'/0'/0/7"`` -> child indexes (hardened ones have bit 31 set).

    ``"m"`` is the empty path. ``'``, ``h`` and ``H`` all mark a hardened step.
    """
    parts = text.strip().split("/")
    if parts[0] != "m":
        raise Bip32Error(f"a derivation path starts with 'm': {text!r}")
    indexes: list[int] = []
    for part in parts[1:]:
        hardened = part[-1:] in ("'", "h", "H")
        digits = part[:-1] if hardened else part
        if not digits.isdigit() or not digits.isascii():
            raise Bip32Error(f"invalid path step {part!r} in {text!r}")
        value = int(digits)
        if value >= HARDENED:
            raise Bip32Error(f"path step {part!r} is out of range (0 .. 2^31-1)")
        indexes.append(value + HARDENED if hardened else value)
    if len(indexes) > MAX_DEPTH:
        raise Bip32Error("path deeper than 255 steps")
    return tuple(indexes)


def format_path(path: tuple[int, ...] | list[int]) -> str:
    """Child indexes -> ``"m/0'/1"``."""
    steps = [f"{i - HARDENED}'" if i >= HARDENED else str(i) for i in path]
    return "/".join(["m", *steps])


def _as_path(path: str | tuple[int, ...] | list[int]) -> tuple[int, ...]:
    if isinstance(path, str):
        return parse_path(path)
    for index in path:
        if not 0 <= index <= 0xFFFF_FFFF:
            raise Bip32Error("child index out of range (0 .. 2^32-1)")
    return tuple(path)


# --------------------------------------------------------------------------- keys


def _hash160(data: bytes) -> bytes:
    return hashlib.new("ripemd160", hashlib.sha256(data).digest()).digest()


def _public_from_scalar(scalar: int) -> bytes:
    return coincurve.PublicKey.from_valid_secret(scalar.to_bytes(KEY_LENGTH, "big")).format(
        compressed=True
    )


def _check_point(point: bytes) -> None:
    """Raise unless ``point`` is a valid compressed secp256k1 point (33 bytes, 02/03 prefix)."""
    if len(point) != COMPRESSED_POINT_LENGTH or point[0] not in (2, 3):
        raise Bip32Error(f"invalid pubkey prefix {point[:1].hex()}")
    try:
        coincurve.PublicKey(point)
    except ValueError:
        raise Bip32Error(f"invalid pubkey {point.hex()}") from None


@dataclass(frozen=True, repr=False, eq=False)
class ExtendedPrivateKey:
    """(k, c) with its place in the tree. ``repr`` never shows k or c."""

    private_key: bytes
    chain_code: bytes
    depth: int = 0
    parent_fingerprint: bytes = b"\x00\x00\x00\x00"
    child_number: int = 0
    _scalar: int = field(default=0, init=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.private_key) != KEY_LENGTH or len(self.chain_code) != KEY_LENGTH:
            raise Bip32Error("private key and chain code are 32 bytes each")
        scalar = int.from_bytes(self.private_key, "big")
        if not 0 < scalar < CURVE_ORDER:
            raise Bip32Error("private key not in 1..n-1")
        object.__setattr__(self, "_scalar", scalar)

    def __repr__(self) -> str:
        return (
            f"ExtendedPrivateKey(depth={self.depth}, child_number={self.child_number}, "
            f"fingerprint={self.fingerprint.hex()}, <secret>)"
        )

    @classmethod
    def from_seed(cls, seed: bytes | bytearray) -> ExtendedPrivateKey:
        """Master key generation: I = HMAC-SHA512("Bitcoin seed", seed)."""
        if not SEED_MIN_BYTES <= len(seed) <= SEED_MAX_BYTES:
            raise Bip32Error("a BIP32 seed is 16 to 64 bytes")
        digest = hmac.digest(MASTER_HMAC_KEY, seed, "sha512")
        left, right = digest[:KEY_LENGTH], digest[KEY_LENGTH:]
        scalar = int.from_bytes(left, "big")
        if not 0 < scalar < CURVE_ORDER:
            raise Bip32Error("this seed gives an invalid master key; use another seed")
        return cls(left, right)

    @cached_property
    def public_key(self) -> bytes:
        """33-byte compressed point K = k*G."""
        return _public_from_scalar(self._scalar)

    @cached_property
    def fingerprint(self) -> bytes:
        """First 4 bytes of HASH160 of this key's public key."""
        return _hash160(self.public_key)[:4]

    def normal_child_keys(self, index: int) -> tuple[bytes, bytes]:
        """(k_i, K_i) of CKDpriv for a normal index: the child's private key and compressed
        public key only, without building the child (its chain code and fingerprint are not
        needed for a leaf). The same checks and result as ``child(index)``."""
        if not 0 <= index < HARDENED:
            raise Bip32Error("normal_child_keys takes a normal (non-hardened) index")
        if self.depth >= MAX_DEPTH:
            raise Bip32Error("depth 255 reached")
        digest = hmac.digest(self.chain_code, self.public_key + index.to_bytes(4, "big"), "sha512")
        tweak = int.from_bytes(digest[:KEY_LENGTH], "big")
        scalar = (tweak + self._scalar) % CURVE_ORDER
        if tweak >= CURVE_ORDER or scalar == 0:
            raise Bip32Error(f"child {index} is invalid (probability < 2^-127); use the next index")
        return scalar.to_bytes(KEY_LENGTH, "big"), _public_from_scalar(scalar)

    def child(self, index: int) -> ExtendedPrivateKey:
        """CKDpriv((k, c), i)."""
        if not 0 <= index <= 0xFFFF_FFFF:
            raise Bip32Error("child index out of range (0 .. 2^32-1)")
        if self.depth >= MAX_DEPTH:
            raise Bip32Error("depth 255 reached")
        if index >= HARDENED:
            data = b"\x00" + self.private_key + index.to_bytes(4, "big")
        else:
            data = self.public_key + index.to_bytes(4, "big")
        digest = hmac.digest(self.chain_code, data, "sha512")
        tweak = int.from_bytes(digest[:KEY_LENGTH], "big")
        scalar = (tweak + self._scalar) % CURVE_ORDER
        if tweak >= CURVE_ORDER or scalar == 0:
            raise Bip32Error(f"child {index} is invalid (probability < 2^-127); use the next index")
        return ExtendedPrivateKey(
            scalar.to_bytes(KEY_LENGTH, "big"),
            digest[KEY_LENGTH:],
            self.depth + 1,
            self.fingerprint,
            index,
        )

    def derive(self, path: str | tuple[int, ...] | list[int]) -> ExtendedPrivateKey:
        """Follow a path (text or indexes) from this key."""
        key = self
        for index in _as_path(path):
            key = key.child(index)
        return key

    def neuter(self) -> ExtendedPublicKey:
        """N((k, c)) = (K, c)."""
        return ExtendedPublicKey(
            self.public_key, self.chain_code, self.depth, self.parent_fingerprint, self.child_number
        )

    def serialize(self, version: bytes = VERSION_MAINNET_PRIVATE) -> bytes:
        """The 78-byte serialization."""
        return (
            version
            + bytes([self.depth])
            + self.parent_fingerprint
            + self.child_number.to_bytes(4, "big")
            + self.chain_code
            + b"\x00"
            + self.private_key
        )

    def to_xprv(self, version: bytes = VERSION_MAINNET_PRIVATE) -> str:
        return b58check_encode(self.serialize(version))

    @classmethod
    def from_xprv(cls, text: str) -> ExtendedPrivateKey:
        key = parse_extended_key(text)
        if not isinstance(key, ExtendedPrivateKey):
            raise Bip32Error("expected an extended private key")
        return key


@dataclass(frozen=True, eq=True)
class ExtendedPublicKey:
    """(K, c) with its place in the tree."""

    public_key: bytes
    chain_code: bytes
    depth: int = 0
    parent_fingerprint: bytes = b"\x00\x00\x00\x00"
    child_number: int = 0

    def __post_init__(self) -> None:
        if len(self.chain_code) != KEY_LENGTH:
            raise Bip32Error("chain code is 32 bytes")
        _check_point(self.public_key)

    @property
    def fingerprint(self) -> bytes:
        return _hash160(self.public_key)[:4]

    def child(self, index: int) -> ExtendedPublicKey:
        """CKDpub((K, c), i), normal steps only."""
        if not 0 <= index < HARDENED:
            raise Bip32Error("a public key derives normal (non-hardened) children only")
        if self.depth >= MAX_DEPTH:
            raise Bip32Error("depth 255 reached")
        digest = hmac.digest(self.chain_code, self.public_key + index.to_bytes(4, "big"), "sha512")
        tweak = digest[:KEY_LENGTH]
        if int.from_bytes(tweak, "big") >= CURVE_ORDER:
            raise Bip32Error(f"child {index} is invalid (probability < 2^-127); use the next index")
        try:
            point = coincurve.PublicKey(self.public_key).add(tweak).format(compressed=True)
        except ValueError:  # the point at infinity
            raise Bip32Error(f"child {index} is invalid; use the next index") from None
        return ExtendedPublicKey(
            point, digest[KEY_LENGTH:], self.depth + 1, self.fingerprint, index
        )

    def derive(self, path: str | tuple[int, ...] | list[int]) -> ExtendedPublicKey:
        key = self
        for index in _as_path(path):
            key = key.child(index)
        return key

    def serialize(self, version: bytes = VERSION_MAINNET_PUBLIC) -> bytes:
        return (
            version
            + bytes([self.depth])
            + self.parent_fingerprint
            + self.child_number.to_bytes(4, "big")
            + self.chain_code
            + self.public_key
        )

    def to_xpub(self, version: bytes = VERSION_MAINNET_PUBLIC) -> str:
        return b58check_encode(self.serialize(version))

    @classmethod
    def from_xpub(cls, text: str) -> ExtendedPublicKey:
        key = parse_extended_key(text)
        if not isinstance(key, ExtendedPublicKey):
            raise Bip32Error("expected an extended public key")
        return key


def parse_extended_key(text: str) -> ExtendedPrivateKey | ExtendedPublicKey:
    """Parse an xprv/xpub/tprv/tpub string with every check of BIP32 test vector 5.

    The Bip32Error message names the reason (checksum, unknown version, version/key mismatch,
    invalid prefix, key out of range, invalid point, depth-zero inconsistencies).
    """
    data = b58check_decode(text)
    if len(data) != SERIALIZED_LENGTH:
        raise Bip32Error(f"an extended key is {SERIALIZED_LENGTH} bytes, got {len(data)}")
    version, depth = data[0:4], data[4]
    fingerprint, child_number = data[5:9], int.from_bytes(data[9:13], "big")
    chain_code, key = data[13:45], data[45:78]
    if version not in _PRIVATE_VERSIONS and version not in _PUBLIC_VERSIONS:
        raise Bip32Error("unknown extended key version")
    if depth == 0 and fingerprint != b"\x00\x00\x00\x00":
        raise Bip32Error("zero depth with non-zero parent fingerprint")
    if depth == 0 and child_number != 0:
        raise Bip32Error("zero depth with non-zero index")
    if version in _PRIVATE_VERSIONS:
        if key[0] in (2, 3):
            raise Bip32Error("prvkey version / pubkey mismatch")
        if key[0] != 0:
            raise Bip32Error(f"invalid prvkey prefix {key[:1].hex()}")
        scalar = int.from_bytes(key[1:], "big")
        if scalar == 0:
            raise Bip32Error("private key 0 not in 1..n-1")
        if scalar >= CURVE_ORDER:
            raise Bip32Error("private key >= n not in 1..n-1")
        return ExtendedPrivateKey(key[1:], chain_code, depth, fingerprint, child_number)
    if key[0] == 0:
        raise Bip32Error("pubkey version / prvkey mismatch")
    if key[0] not in (2, 3):
        raise Bip32Error(f"invalid pubkey prefix {key[:1].hex()}")
    return ExtendedPublicKey(key, chain_code, depth, fingerprint, child_number)
