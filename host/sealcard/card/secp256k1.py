"""The user key's curve, secp256k1: the card's public key and signatures checked by libsecp256k1.

Pure functions over what the card answers (no I/O). Verification uses
coincurve (libsecp256k1, Bitcoin Core's library), which accepts only low-S
signatures, so a signature that passes here is one Bitcoin and Ethereum take.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import coincurve
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sealcard.card.constants import HASH_LENGTH
from sealcard.card.errors import CardResponseError
from sealcard.errors import VerificationError

SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
HALF_N: Final = SECP256K1_N // 2
SCALAR_LENGTH: Final = 32
UNCOMPRESSED_LENGTH: Final = 65
RECOVERY_IDS: Final = (0, 1, 2, 3)


def decode_user_public_key(data: bytes) -> ec.EllipticCurvePublicKey:
    """The card's DO_USER_PUBLIC_KEY (65-byte uncompressed secp256k1 point) as a pyca key."""
    if len(data) != UNCOMPRESSED_LENGTH:
        raise CardResponseError(f"user public key is {len(data)} bytes, expected 65")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), data)
    except ValueError as exc:
        raise CardResponseError(f"user public key is not a secp256k1 point: {exc}") from exc


def point_bytes(key: ec.EllipticCurvePublicKey, *, compressed: bool = False) -> bytes:
    """X9.62 encoding of a public key: 65 bytes uncompressed or 33 compressed."""
    fmt = PublicFormat.CompressedPoint if compressed else PublicFormat.UncompressedPoint
    return key.public_bytes(Encoding.X962, fmt)


def is_low_s(der: bytes) -> bool:
    """Whether a DER ECDSA signature has s <= n/2 (BIP 62 / EIP-2)."""
    _r, s = decode_dss_signature(der)
    return 0 < s <= HALF_N


def verify_hash_signature(public_key: ec.EllipticCurvePublicKey, hash32: bytes, der: bytes) -> None:
    """Raise VerificationError unless libsecp256k1 accepts `der` over `hash32` (low-S only)."""
    if len(hash32) != HASH_LENGTH:
        raise ValueError(f"the hash must be {HASH_LENGTH} bytes")
    try:
        ok = coincurve.PublicKey(point_bytes(public_key)).verify(der, hash32, hasher=None)
    except (ValueError, TypeError) as exc:
        raise VerificationError(f"libsecp256k1 refused the signature: {exc}") from exc
    if not ok:
        raise VerificationError("the signature does not verify under the user public key")


@dataclass(frozen=True)
class RecoverableSignature:
    """A signature split for blockchains: r, s, and the recovery id Ethereum calls v - 27."""

    der: bytes
    r: int
    s: int
    recovery_id: int
    low_s: bool

    @property
    def compact(self) -> bytes:
        """r || s (64 bytes)."""
        return self.r.to_bytes(SCALAR_LENGTH, "big") + self.s.to_bytes(SCALAR_LENGTH, "big")

    @property
    def ethereum_v(self) -> int:
        """Legacy Ethereum v (27 or 28); EIP-155 transactions use recovery_id + 35 + 2*chain_id."""
        return 27 + self.recovery_id


def recoverable_signature(
    public_key: ec.EllipticCurvePublicKey, hash32: bytes, der: bytes
) -> RecoverableSignature:
    """Verify `der` with libsecp256k1 and find the recovery id that yields `public_key`."""
    verify_hash_signature(public_key, hash32, der)
    r, s = decode_dss_signature(der)
    expected = point_bytes(public_key, compressed=True)
    compact = r.to_bytes(SCALAR_LENGTH, "big") + s.to_bytes(SCALAR_LENGTH, "big")
    for rec_id in RECOVERY_IDS:
        try:
            recovered = coincurve.PublicKey.from_signature_and_message(
                compact + bytes((rec_id,)), hash32, hasher=None
            )
        except (ValueError, TypeError):
            continue
        if recovered.format(compressed=True) == expected:
            return RecoverableSignature(der, r, s, rec_id, is_low_s(der))
    raise VerificationError("no recovery id gives the user public key")
