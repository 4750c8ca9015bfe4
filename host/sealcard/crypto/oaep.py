"""RSAES-OAEP decoding (RFC 8017, section 7.1.2) with SHA-256 and MGF1-SHA-256, empty label.

Why here: SoftHSM 2.6.1 decrypts OAEP with SHA-1 only, and the PIN letters (docs/pin-letter.md)
use SHA-256. The mailer's token does the private-key step (raw RSA, CKM_RSA_X_509) and this
decodes the padding. Every check runs and the results are combined before one decision, so the
time taken does not say which check failed; callers also open only letters whose signature
they checked first, so nobody can send chosen ciphertexts to the decoder. Pure, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac

HASH_BYTES = 32
_EMPTY_LABEL_HASH = hashlib.sha256(b"").digest()


class OaepDecodingError(ValueError):
    """The encoded message is not a valid OAEP encoding for this key (one reason for all)."""


def _mgf1(seed: bytes, length: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return bytes(out[:length])


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def oaep_sha256_decode(encoded: bytes, modulus_bytes: int) -> bytes:
    """The message inside EM = raw RSA output (k bytes, leading zeros kept)."""
    k = modulus_bytes
    if len(encoded) != k or k < 2 * HASH_BYTES + 2:
        raise OaepDecodingError("decryption error")
    masked_seed = encoded[1 : 1 + HASH_BYTES]
    masked_db = encoded[1 + HASH_BYTES :]
    seed = _xor(masked_seed, _mgf1(masked_db, HASH_BYTES))
    db = _xor(masked_db, _mgf1(seed, k - HASH_BYTES - 1))
    good = hmac.compare_digest(db[:HASH_BYTES], _EMPTY_LABEL_HASH) & (encoded[0] == 0)
    # Find the 0x01 separator without branching on secret bytes.
    index = 0
    looking = 1
    bad_padding = 0
    for position in range(HASH_BYTES, len(db)):
        byte = db[position]
        is_one = int(byte == 1)
        is_zero = int(byte == 0)
        index |= position * (looking & is_one)
        bad_padding |= looking & (1 - is_one) & (1 - is_zero)
        looking &= 1 - is_one
    if not good or looking or bad_padding:
        raise OaepDecodingError("decryption error")
    return db[index + 1 :]
