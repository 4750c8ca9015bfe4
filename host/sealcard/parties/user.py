"""The card holder: PIN handling, signing hashes, the key's addresses, and checking the card.

Workflows over `SealcardSession`; no printing, no prompting (the CLI reads
PINs from a prompt or a file descriptor and passes them in). PINs are never
logged or put into an exception message.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass
from typing import Final

from Crypto.Hash import keccak
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from sealcard.card.constants import HASH_LENGTH
from sealcard.card.encoding import Secret
from sealcard.card.secp256k1 import RecoverableSignature, point_bytes, recoverable_signature
from sealcard.card.session import SealcardSession
from sealcard.errors import VerificationError
from sealcard.formats.attestation import (
    AttestationReport,
    CardPublicData,
    certified_issuer_auth_key,
    verify_internal_authenticate,
)
from sealcard.parties.provider import check_card

AUTH_CHALLENGE_LENGTH: Final = 32
"""Bytes of the random challenge `authenticate_card` sends (the card takes 8 to 64)."""
BECH32_CHARSET: Final = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
BECH32_GENERATORS: Final = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
WITNESS_VERSION_0: Final = 0
ETH_ADDRESS_BYTES: Final = 20


# ---- signing ---------------------------------------------------------------------------------


def sign_hash(
    session: SealcardSession, hash32: bytes, pin: Secret | None = None
) -> RecoverableSignature:
    """Verify the PIN (when given), have the card sign `hash32`, check it with libsecp256k1.

    Returns DER, r, s, low-S flag and the recovery id (Ethereum's v - 27);
    VerificationError if the card's signature does not verify under the
    card's own user public key.
    """
    if len(hash32) != HASH_LENGTH:
        raise ValueError(f"the hash must be {HASH_LENGTH} bytes")
    if pin is not None:
        session.verify_pin(pin)
    der = session.sign_hash(hash32)
    return recoverable_signature(session.user_public_key(), hash32, der)


# ---- addresses -------------------------------------------------------------------------------


def _bech32_polymod(values: list[int]) -> int:
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for i, generator in enumerate(BECH32_GENERATORS):
            if (top >> i) & 1:
                checksum ^= generator
    return checksum


def _regroup(data: bytes, from_bits: int, to_bits: int) -> list[int]:
    """Regroup bits (8 -> 5), padding the last group with zeros (BIP 173)."""
    acc = bits = 0
    out: list[int] = []
    mask = (1 << to_bits) - 1
    for byte in data:
        acc = (acc << from_bits) | byte
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & mask)
    if bits:
        out.append((acc << (to_bits - bits)) & mask)
    return out


def bech32_encode(hrp: str, data: list[int]) -> str:
    """BIP 173 bech32 (the checksum of segwit version 0 addresses)."""
    expanded = [ord(x) >> 5 for x in hrp] + [0] + [ord(x) & 31 for x in hrp]
    polymod = _bech32_polymod([*expanded, *data, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(BECH32_CHARSET[d] for d in [*data, *checksum])


def hash160(data: bytes) -> bytes:
    """RIPEMD-160 of SHA-256 (Bitcoin's key hash)."""
    return hashlib.new("ripemd160", hashlib.sha256(data).digest()).digest()


def bitcoin_p2wpkh_address(key: ec.EllipticCurvePublicKey, hrp: str = "bc") -> str:
    """Native segwit v0 address of the compressed key ("bc" mainnet, "tb" testnet)."""
    program = hash160(point_bytes(key, compressed=True))
    return bech32_encode(hrp, [WITNESS_VERSION_0, *_regroup(program, 8, 5)])


def keccak256(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


def ethereum_address(key: ec.EllipticCurvePublicKey) -> str:
    """EIP-55 checksummed address: last 20 bytes of Keccak-256 of X || Y."""
    raw = keccak256(point_bytes(key)[1:])[-ETH_ADDRESS_BYTES:].hex()
    mixed = keccak256(raw.encode("ascii")).hex()
    return "0x" + "".join(
        ch.upper() if ch.isalpha() and int(mixed[i], 16) >= 8 else ch for i, ch in enumerate(raw)
    )


@dataclass(frozen=True)
class UserKeyInfo:
    """The user's public key in the forms wallets use."""

    public_key: ec.EllipticCurvePublicKey
    compressed_hex: str
    uncompressed_hex: str
    ethereum_address: str
    bitcoin_p2wpkh_address: str


def user_key_info(session: SealcardSession, *, bitcoin_hrp: str = "bc") -> UserKeyInfo:
    """Read the user public key from the card; give its hex forms and addresses."""
    key = session.user_public_key()
    return UserKeyInfo(
        public_key=key,
        compressed_hex=point_bytes(key, compressed=True).hex(),
        uncompressed_hex=point_bytes(key).hex(),
        ethereum_address=ethereum_address(key),
        bitcoin_p2wpkh_address=bitcoin_p2wpkh_address(key, bitcoin_hrp),
    )


# ---- card authentication (INTERNAL AUTHENTICATE, claim 13) -----------------------------------


@dataclass(frozen=True)
class CardAuthentication:
    """Whether the card proved it holds the private key of its root-certified auth key."""

    genuine: bool
    reason: str
    challenge: bytes
    signature: bytes
    card: CardPublicData
    attestation: AttestationReport


def authenticate_card(
    session: SealcardSession,
    root_certificate: x509.Certificate,
    *,
    challenge: bytes | None = None,
    now: dt.datetime | None = None,
) -> CardAuthentication:
    """Check the card's attestation chain, then have it sign a fresh challenge.

    Genuine only when the chain verifies against the provider root *and* the
    answer verifies under the issuer authentication key from the root-signed
    certificate (not merely the key the card reports).
    """
    data, report = check_card(session, root_certificate, now=now)
    nonce = os.urandom(AUTH_CHALLENGE_LENGTH) if challenge is None else challenge
    signature = session.internal_authenticate(nonce)
    key = certified_issuer_auth_key(report, data)
    if key is None or data.serial is None:
        reasons = "; ".join(f"{c.name}: {c.reason}" for c in report.failures) or "no serial"
        return CardAuthentication(
            False, f"attestation failed: {reasons}", nonce, signature, data, report
        )
    try:
        verify_internal_authenticate(signature, data.serial, nonce, key)
    except (VerificationError, ValueError) as exc:
        return CardAuthentication(False, str(exc), nonce, signature, data, report)
    return CardAuthentication(
        True,
        "the card signed the challenge with its root-certified issuer authentication key",
        nonce,
        signature,
        data,
        report,
    )
