"""Low-S ECDSA signatures: of (r, s) and (r, n - s), both valid, keep the one with s <= n/2.

A verifier that accepts either lets anyone turn one signed object into a second, different
one with the same content (signature malleability). The sealed blob takes only the low one,
on the host (`sealed_blob.verify_signature`) and on the card (docs/sealed-blob.md), so a
blob's bytes are unique. Pure functions, no I/O.
"""

from __future__ import annotations

from typing import Final

from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

P256_ORDER: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
"""n of NIST P-256 (SEC 2, 2.4.2)."""


def is_low_s(der: bytes, order: int = P256_ORDER) -> bool:
    """Whether a DER ECDSA signature has 0 < s <= order/2 (ValueError when not DER)."""
    _r, s = decode_dss_signature(der)
    return 0 < s <= order // 2


def to_low_s(der: bytes, order: int = P256_ORDER) -> bytes:
    """The low-S form of a DER ECDSA signature (the same signature when it is low already)."""
    r, s = decode_dss_signature(der)
    if s > order // 2:
        s = order - s
    return encode_dss_signature(r, s)
