"""Public-key encodings shared by every party: loading PEM/DER, comparing, fingerprints.

Pure functions, no I/O. Wrong key type: TypeError; bad bytes: ValueError.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
    load_pem_public_key,
)

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

PEM_MARKER = b"-----BEGIN"
P256_POINT_LENGTH = 65


def unreadable(what: str, data: bytes) -> str:
    """Why `data` did not load as `what`, in words (the parser's own message names its
    internals, e.g. "ParseError { kind: ShortData }", which helps nobody)."""
    if not data.strip():
        return f"not {what}: the file is empty"
    if PEM_MARKER in data:
        return f"not {what}: the PEM text is damaged (cut short or edited) or holds another kind"
    return f"not {what} in PEM or DER form"


def load_public_key(data: bytes) -> PublicKey:
    """An RSA or EC public key from PEM or DER SubjectPublicKeyInfo (ValueError in words)."""
    try:
        key = load_pem_public_key(data) if PEM_MARKER in data else load_der_public_key(data)
    except ValueError:
        raise ValueError(unreadable("a public key", data)) from None
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise TypeError(f"expected an RSA or EC public key, got {type(key).__name__}")
    return key


def load_p256_public_key(data: bytes) -> ec.EllipticCurvePublicKey:
    """An EC P-256 public key from PEM, DER SubjectPublicKeyInfo, or a 65-byte X9.62 point."""
    if len(data) == P256_POINT_LENGTH and data[0] == 0x04:
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), data)
        except ValueError:
            raise ValueError("not a P-256 public key: that point is not on the curve") from None
    key = load_public_key(data)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise TypeError(f"expected an EC public key, got {type(key).__name__}")
    if not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"expected a P-256 key, got curve {key.curve.name}")
    return key


def spki_der(key: PublicKey) -> bytes:
    """The key's DER SubjectPublicKeyInfo (one canonical form for comparisons)."""
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def public_key_pem(key: PublicKey) -> str:
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def public_keys_equal(a: PublicKey, b: PublicKey) -> bool:
    """Whether two public keys are the same key (public data: plain comparison is fine)."""
    return spki_der(a) == spki_der(b)


def fingerprint(key: PublicKey) -> str:
    """SHA-256 of the DER SubjectPublicKeyInfo, lower-case hex."""
    return hashlib.sha256(spki_der(key)).hexdigest()
