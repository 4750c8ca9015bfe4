"""PIN and PUK generation from a random source (the issuer HSM's token RNG), without bias.

Each decimal digit comes from one random byte taken only if it is below 250 (the largest
multiple of 10 that fits a byte), so every digit is uniform: rejection sampling.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from sealcard.errors import SealcardError

PIN_MIN_DIGITS = 4
PIN_MAX_DIGITS = 12
PUK_MIN_DIGITS = 8
PUK_MAX_DIGITS = 12
DEFAULT_PIN_DIGITS = 6
DEFAULT_PUK_DIGITS = 8

_ACCEPT_BELOW = 250  # 25 * 10: bytes 250..255 are rejected


class PinError(ValueError, SealcardError):
    """A PIN or PUK request that cannot be met (digit count out of range, bad RNG)."""


def _digits(randbytes: Callable[[int], bytes], count: int) -> bytes:
    out = bytearray()
    while len(out) < count:
        chunk = randbytes(count - len(out) + 4)
        if not chunk:
            raise PinError("the random source returned no bytes")
        out.extend(0x30 + b % 10 for b in chunk if b < _ACCEPT_BELOW)
    return bytes(out[:count])


def generate_pin(randbytes: Callable[[int], bytes], digits: int = DEFAULT_PIN_DIGITS) -> bytes:
    """A PIN of ``digits`` ASCII digits (4..12)."""
    if not PIN_MIN_DIGITS <= digits <= PIN_MAX_DIGITS:
        raise PinError(f"a PIN has {PIN_MIN_DIGITS} to {PIN_MAX_DIGITS} digits")
    return _digits(randbytes, digits)


def generate_puk(randbytes: Callable[[int], bytes], digits: int = DEFAULT_PUK_DIGITS) -> bytes:
    """A PUK of ``digits`` ASCII digits (8..12)."""
    if not PUK_MIN_DIGITS <= digits <= PUK_MAX_DIGITS:
        raise PinError(f"a PUK has {PUK_MIN_DIGITS} to {PUK_MAX_DIGITS} digits")
    return _digits(randbytes, digits)


def secrets_equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison for PINs and PUKs."""
    return hmac.compare_digest(a, b)
