"""The provider's X.509 profile: root CA and the two leaf certificates of a card.

Pure functions (no I/O). Choices, documented here and in docs:

- Root CA: EC P-256, self-signed, ECDSA with SHA-256; subject
  `CN=<name>, O=<organisation>`; BasicConstraints CA:TRUE, pathlen 0
  (critical); KeyUsage keyCertSign + cRLSign (critical); SKI.
  Valid `ROOT_VALIDITY` (25 years): longer than any card it signs.
- Leaf certificates (one per card key), issued by the root, ECDSA SHA-256:
  subject `CN=sealcard device key <SERIAL>` or
  `CN=sealcard issuer authentication key <SERIAL>`, `serialNumber=<SERIAL>`
  (the card serial, upper-case hex), `O=<root's O>`;
  BasicConstraints CA:FALSE (critical); KeyUsage (critical):
  keyEncipherment for the RSA device key (it only decrypts the sealed
  blob's OAEP), digitalSignature for the EC issuer authentication key;
  SKI and AKI (the root's SKI). Random 159-bit certificate serial numbers.
  Valid `LEAF_VALIDITY` (20 years), from `LEAF_BACKDATE` (5 min) before
  issuance to allow clock skew between provider and verifiers.
"""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from sealcard.crypto.keys import PEM_MARKER, PublicKey, unreadable

ROOT_VALIDITY: Final = dt.timedelta(days=25 * 365)
LEAF_VALIDITY: Final = dt.timedelta(days=20 * 365)
LEAF_BACKDATE: Final = dt.timedelta(minutes=5)
DEFAULT_ROOT_NAME: Final = "sealcard provider root CA"
DEFAULT_ORGANISATION: Final = "sealcard card provider"


def load_certificate(data: bytes) -> x509.Certificate:
    """An X.509 certificate from PEM or DER (ValueError in words, not the parser's)."""
    try:
        if PEM_MARKER in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise ValueError(unreadable("an X.509 certificate", data)) from None


class CardKeyRole(Enum):
    """Which card key a leaf certificate is for, and how its subject CN starts."""

    DEVICE = "sealcard device key"
    ISSUER_AUTH = "sealcard issuer authentication key"


def serial_text(serial: bytes) -> str:
    """How the card serial appears in certificates and on screen: upper-case hex."""
    return serial.hex().upper()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def create_root_certificate(
    private_key: ec.EllipticCurvePrivateKey,
    *,
    common_name: str = DEFAULT_ROOT_NAME,
    organisation: str = DEFAULT_ORGANISATION,
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """The provider's self-signed root CA certificate (P-256 keys only)."""
    if not isinstance(private_key.curve, ec.SECP256R1):
        raise ValueError(f"the provider root key must be P-256, got {private_key.curve.name}")
    start = now or _now()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        ]
    )
    public = private_key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + ROOT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(private_key, hashes.SHA256())
    )


def leaf_subject(role: CardKeyRole, serial: bytes, organisation: str) -> x509.Name:
    text = serial_text(serial)
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{role.value} {text}"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, text),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        ]
    )


def _organisation(root: x509.Certificate) -> str:
    values = root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(values[0].value) if values else DEFAULT_ORGANISATION


def create_leaf_certificate(
    role: CardKeyRole,
    public_key: PublicKey,
    serial: bytes,
    root_certificate: x509.Certificate,
    root_private_key: ec.EllipticCurvePrivateKey,
    *,
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """A root-signed certificate of one card public key, the card serial in its subject."""
    if role is CardKeyRole.DEVICE and not isinstance(public_key, rsa.RSAPublicKey):
        raise TypeError("the device key certificate certifies an RSA key")
    if role is CardKeyRole.ISSUER_AUTH and not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise TypeError("the issuer authentication key certificate certifies an EC key")
    start = (now or _now()) - LEAF_BACKDATE
    is_device = role is CardKeyRole.DEVICE
    root_ski = root_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    return (
        x509.CertificateBuilder()
        .subject_name(leaf_subject(role, serial, _organisation(root_certificate)))
        .issuer_name(root_certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + LEAF_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not is_device,
                content_commitment=False,
                key_encipherment=is_device,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski.value),
            critical=False,
        )
        .sign(root_private_key, hashes.SHA256())
    )


def subject_serial(certificate: x509.Certificate) -> str | None:
    """The serialNumber attribute of a certificate's subject (None when absent or repeated)."""
    values = certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if len(values) != 1:
        return None
    return str(values[0].value)
