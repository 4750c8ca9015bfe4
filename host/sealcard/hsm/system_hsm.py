"""The issuer-system HSM: per-card device authentication keys, the request-signing key and
the key that signs the audit log's checkpoints.

Per-card keys never become token objects (an issuer issues millions of cards): each key pair
is generated in the token as session objects, the private key (sensitive, extractable only
by wrapping) leaves wrapped under the non-extractable AES-256 token key ``device-auth-kek``
(CKM_AES_KEY_WRAP_PAD, RFC 5649), both session objects are destroyed, and the issuer keeps the
wrapped blob in its database. To authenticate to a card the blob is unwrapped into the token
(session object, not extractable), used once and destroyed.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pkcs11
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_named_curve_parameters

from sealcard.hsm import _cryptoki as ck
from sealcard.hsm.errors import HsmError
from sealcard.hsm.token import PooledSession, Token, point_from_ec_point_attribute, raw_to_der

DEVICE_AUTH_KEK_LABEL = "device-auth-kek"
REQUEST_KEY_LABEL = "issuer-system-request-key"
AUDIT_KEY_LABEL = "issuer-system-audit-key"
_P256_PARAMS = encode_named_curve_parameters("secp256r1")
_WRAP = Mechanism.AES_KEY_WRAP_PAD

# Prebuilt for the per-card path (C_GenerateKeyPair, C_WrapKey, C_DestroyObject): session
# objects only; the private key is private, sensitive and extractable only by wrapping.
_KEYGEN = ck.MechanismSpec(ck.CKM_EC_KEY_PAIR_GEN)
_WRAP_PAD = ck.MechanismSpec(ck.CKM_AES_KEY_WRAP_PAD)
_DEVICE_PUBLIC_TEMPLATE = ck.Template(
    [
        (ck.CKA_TOKEN, False),
        (ck.CKA_EC_PARAMS, bytes(_P256_PARAMS)),
        (ck.CKA_VERIFY, True),
    ]
)
_DEVICE_PRIVATE_TEMPLATE = ck.Template(
    [
        (ck.CKA_TOKEN, False),
        (ck.CKA_PRIVATE, True),
        (ck.CKA_SENSITIVE, True),
        (ck.CKA_EXTRACTABLE, True),
        (ck.CKA_SIGN, True),
        (ck.CKA_DERIVE, False),
    ]
)


class DeviceAuthKeys:
    """Device authentication key pairs (EC P-256), one per card, wrapped under a token KEK."""

    def __init__(self, token: Token, kek_label: str = DEVICE_AUTH_KEK_LABEL) -> None:
        self.token = token
        self.kek_label = kek_label

    def ensure_kek(self) -> bool:
        """Create the KEK if the token lacks it; True if created."""
        if self.token.has_object(self.kek_label):
            return False
        self.token.generate_aes_key(self.kek_label, wrap=True, decrypt=False)
        return True

    def _generate_in(self, s: PooledSession) -> tuple[bytes, bytes]:
        raw = s.raw
        kek = s.copy_handle(ObjectClass.SECRET_KEY, self.kek_label)
        public, private = raw.generate_key_pair(
            _KEYGEN, _DEVICE_PUBLIC_TEMPLATE, _DEVICE_PRIVATE_TEMPLATE
        )
        try:
            point = point_from_ec_point_attribute(raw.attribute(public, ck.CKA_EC_POINT))
            wrapped = raw.wrap_key(_WRAP_PAD, kek, private)
        finally:
            raw.destroy(private)
            raw.destroy(public)
        return point, wrapped

    def generate(self) -> tuple[bytes, bytes]:
        """A fresh key pair: (public point, 65 bytes; private key wrapped under the KEK)."""
        with self.token.session() as s:
            return self._generate_in(s)

    def generate_many(self, count: int, threads: int = 1) -> list[tuple[bytes, bytes]]:
        """``count`` key pairs; ``threads`` > 1 spreads them over pool sessions (OS locking is
        on). Measured on 2 shared cores, one thread was as fast or faster (docs/hsm.md)."""
        workers = max(1, min(threads, self.token.pool_size, count or 1))

        def run(n: int) -> list[tuple[bytes, bytes]]:
            with self.token.session() as s:
                return [self._generate_in(s) for _ in range(n)]

        if workers == 1 or count < 2 * workers:
            return run(count)
        shares = [count // workers + (1 if i < count % workers else 0) for i in range(workers)]

        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(run, shares))
        return [pair for part in parts for pair in part]

    def sign(self, wrapped: bytes, data: bytes) -> bytes:
        """Unwrap in the token, sign ECDSA-SHA256 over ``data`` (DER), destroy the key."""
        digest = hashlib.sha256(data).digest()
        with self.token.session() as s:
            kek = s.session_copy(ObjectClass.SECRET_KEY, self.kek_label)
            try:
                key: Any = kek.unwrap_key(
                    ObjectClass.PRIVATE_KEY,
                    KeyType.EC,
                    wrapped,
                    mechanism=_WRAP,
                    store=False,
                    capabilities=0,
                    template={
                        Attribute.SIGN: True,
                        Attribute.SENSITIVE: True,
                        Attribute.EXTRACTABLE: False,
                        # python-pkcs11 adds these for every key type; SoftHSM refuses them
                        # on private keys (CKR_ATTRIBUTE_TYPE_INVALID): leave them out.
                        Attribute.ENCRYPT: pkcs11.DEFAULT,
                        Attribute.VERIFY: pkcs11.DEFAULT,
                        Attribute.WRAP: pkcs11.DEFAULT,
                        Attribute.DECRYPT: pkcs11.DEFAULT,
                        Attribute.UNWRAP: pkcs11.DEFAULT,
                    },
                )
            except pkcs11.PKCS11Error as exc:
                raise HsmError(f"cannot unwrap the device authentication key: {exc!r}") from None
            try:
                return raw_to_der(key.sign(digest, mechanism=Mechanism.ECDSA))
            finally:
                key.destroy()


class RequestSigner:
    """The issuer system's request-signing key (EC P-256, token object, non-extractable)."""

    def __init__(self, token: Token, label: str = REQUEST_KEY_LABEL) -> None:
        self.token = token
        self.label = label
        self._public: ec.EllipticCurvePublicKey | None = None

    def ensure_key(self) -> bool:
        """Generate the key pair if the token lacks it; True if created."""
        if self.token.has_object(self.label):
            return False
        self.token.generate_ec_keypair(self.label, "P-256", token=True, extractable=False)
        return True

    def sign(self, data: bytes) -> bytes:
        """ECDSA P-256 over SHA-256(data), in the token; DER."""
        return self.token.sign_ecdsa_sha256(self.label, data)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        if self._public is None:
            self._public = self.token.ec_public_key(self.label)
        return self._public


class AuditKey(RequestSigner):
    """The key that signs audit log checkpoints (EC P-256, token object, non-extractable).

    A key of its own, not the request key: whoever may ask the issuer HSM for seals need not be
    able to vouch for the audit log, and the two can be rotated apart (docs/audit.md).
    """

    def __init__(self, token: Token, label: str = AUDIT_KEY_LABEL) -> None:
        super().__init__(token, label)
