"""A party's keys for sealed files, inside its PKCS#11 token (SoftHSM2 by default).

- The party key (label `party-file-key`): EC P-256, token object, private part sensitive and
  never extractable; it signs (CKM_ECDSA over a SHA-256 digest) the files its party sends and
  does the ECDH (CKM_ECDH1_DERIVE) that opens the files sent to it. SoftHSM 2.6.1 derives only
  with CKD_NULL, so the token returns the shared secret (a 32-byte generic secret made
  extractable for this purpose and destroyed at once) and the X9.63 KDF runs in the caller:
  the private key itself never leaves the token.
- The mailer's letter key (label `mailer-letter-key`): RSA-3072, for the PIN letters the
  issuer HSM and the bureau encrypt with RSA-OAEP-SHA256. SoftHSM offers OAEP with SHA-1
  only, so the token does the raw RSA step (CKM_RSA_X_509) and `crypto.oaep` decodes.

The issuer's party key lives in the issuer-system token (the same token as its request key).
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_named_curve_parameters

from sealcard.crypto.oaep import OaepDecodingError, oaep_sha256_decode
from sealcard.hsm.errors import HsmError
from sealcard.hsm.token import Token, point_from_ec_point_attribute

PARTY_KEY_LABEL: Final = "party-file-key"
LETTER_KEY_LABEL: Final = "mailer-letter-key"
LETTER_KEY_BITS: Final = 3072
_P256_PARAMS = encode_named_curve_parameters("secp256r1")
_SHARED_SECRET_BYTES = 32


class PartyKeyError(HsmError):
    """The party key or the letter key is missing or failed in the token."""


def _find_one(session: Any, object_class: ObjectClass, label: str) -> Any:
    found = list(session.get_objects({Attribute.CLASS: object_class, Attribute.LABEL: label}))
    if not found:
        raise PartyKeyError(f"no {label!r} in the token: run `keys init` first")
    if len(found) > 1:
        raise PartyKeyError(f"several {label!r} objects in the token")
    return found[0]


class TokenPartyKey:
    """The party key in a token, with the party's certificate (once it has one)."""

    def __init__(self, token: Token, certificate: x509.Certificate | None = None) -> None:
        self.token = token
        self._certificate = certificate

    @property
    def certificate(self) -> x509.Certificate:
        if self._certificate is None:
            raise PartyKeyError("the party key has no certificate yet")
        return self._certificate

    def with_certificate(self, certificate: x509.Certificate) -> TokenPartyKey:
        return TokenPartyKey(self.token, certificate)

    def exists(self) -> bool:
        return self.token.has_object(PARTY_KEY_LABEL)

    def generate(self) -> ec.EllipticCurvePublicKey:
        """Make the key pair in the token (refused if there is one)."""
        if self.exists():
            raise PartyKeyError("the token already holds a party key; keys are made once")
        with self.token.session() as s:
            public, _private = s.session.generate_keypair(
                KeyType.EC,
                store=True,
                label=PARTY_KEY_LABEL,
                public_template={Attribute.EC_PARAMS: _P256_PARAMS, Attribute.VERIFY: True},
                private_template={
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.SIGN: True,
                    Attribute.DERIVE: True,
                    Attribute.PRIVATE: True,
                },
            )
            point = point_from_ec_point_attribute(public[Attribute.EC_POINT])
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.token.ec_public_key(PARTY_KEY_LABEL)

    def sign(self, data: bytes) -> bytes:
        """ECDSA P-256 over SHA-256(data), in the token; DER."""
        return self.token.sign_ecdsa_sha256(PARTY_KEY_LABEL, data)

    def ecdh(self, peer: ec.EllipticCurvePublicKey) -> bytes:
        """The ECDH shared secret with `peer` (x coordinate), computed in the token."""
        point = peer.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        with self.token.session() as s:
            private = _find_one(s.session, ObjectClass.PRIVATE_KEY, PARTY_KEY_LABEL)
            try:
                secret = private.derive_key(
                    KeyType.GENERIC_SECRET,
                    _SHARED_SECRET_BYTES * 8,
                    mechanism_param=(pkcs11.KDF.NULL, None, point),
                    store=False,
                    template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True},
                )
            except pkcs11.PKCS11Error as exc:
                raise PartyKeyError(f"ECDH in the token failed: {type(exc).__name__}") from None
            try:
                return bytes(secret[Attribute.VALUE])
            finally:
                secret.destroy()


class TokenLetterKey:
    """The mailer's RSA key for PIN letters, in its token."""

    def __init__(self, token: Token) -> None:
        self.token = token

    def exists(self) -> bool:
        return self.token.has_object(LETTER_KEY_LABEL)

    def generate(self, bits: int = LETTER_KEY_BITS) -> rsa.RSAPublicKey:
        if self.exists():
            raise PartyKeyError("the token already holds a letter key; keys are made once")
        with self.token.session() as s:
            public, _private = s.session.generate_keypair(
                KeyType.RSA,
                bits,
                store=True,
                label=LETTER_KEY_LABEL,
                public_template={Attribute.ENCRYPT: True, Attribute.VERIFY: False},
                private_template={
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.DECRYPT: True,
                    Attribute.SIGN: False,
                    Attribute.PRIVATE: True,
                },
            )
            return self._public(public)

    @staticmethod
    def _public(public: Any) -> rsa.RSAPublicKey:
        modulus = int.from_bytes(bytes(public[Attribute.MODULUS]), "big")
        exponent = int.from_bytes(bytes(public[Attribute.PUBLIC_EXPONENT]), "big")
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()

    def public_key(self) -> rsa.RSAPublicKey:
        with self.token.session() as s:
            return self._public(_find_one(s.session, ObjectClass.PUBLIC_KEY, LETTER_KEY_LABEL))

    def decrypt_oaep_sha256(self, ciphertext: bytes) -> bytes:
        """RSA-OAEP (SHA-256, MGF1-SHA-256) decryption: raw RSA in the token, decoding here."""
        with self.token.session() as s:
            private = _find_one(s.session, ObjectClass.PRIVATE_KEY, LETTER_KEY_LABEL)
            try:
                raw = bytes(private.decrypt(ciphertext, mechanism=Mechanism.RSA_X_509))
            except pkcs11.PKCS11Error:
                raise PartyKeyError("the letter key cannot decrypt this") from None
        modulus_bytes = (self.public_key().key_size + 7) // 8
        encoded = raw.rjust(modulus_bytes, b"\x00")
        try:
            return oaep_sha256_decode(encoded, modulus_bytes)
        except OaepDecodingError:
            raise PartyKeyError("the letter key cannot decrypt this") from None


def certificate_matches(certificate: x509.Certificate, key: ec.EllipticCurvePublicKey) -> bool:
    """Whether a certificate holds this public key (public data: a plain comparison)."""

    def spki(k: Any) -> bytes:
        der: bytes = k.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(der).digest()

    return spki(certificate.public_key()) == spki(key)
