"""Party certificates: how each party's file key (and the mailer's letter key) is published.

Profile (docs/files.md):

- Party certificate: self-signed, EC P-256, ecdsa-with-SHA256; subject
  `CN=<name>, OU=sealcard <role>, O=sealcard party`; BasicConstraints CA:FALSE (critical);
  KeyUsage digitalSignature + keyAgreement (critical): the one key signs the files its party
  sends and opens (ECDH) the files sent to it; SKI; valid 10 years.
- Mailer letter certificate: the mailer's RSA key for PIN letters (RSA-OAEP, the format the
  issuer HSM writes), issued by the mailer's party certificate; KeyUsage keyEncipherment.

The signature comes from a callable (the private key stays in its token). Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from sealcard.formats.party_csv import Role, a, check_party_name

ORGANISATION: Final = "sealcard party"
ROLE_PREFIX: Final = "sealcard "
LETTER_ROLE: Final = "sealcard mailer letters"
VALIDITY: Final = dt.timedelta(days=3650)
BACKDATE: Final = dt.timedelta(minutes=5)

Signer = Callable[[bytes], bytes]


class PartyCertificateError(ValueError):
    """A certificate that is not a sealcard party certificate."""


def _spki(public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> asn1_keys.PublicKeyInfo:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return asn1_keys.PublicKeyInfo.load(der)


def _time(when: dt.datetime) -> asn1_x509.Time:
    kind = "utc_time" if when.year < 2050 else "general_time"
    return asn1_x509.Time(name=kind, value=when)


def _name(name: str, unit: str) -> asn1_x509.Name:
    return asn1_x509.Name.build(
        {
            "common_name": name,
            "organizational_unit_name": unit,
            "organization_name": ORGANISATION,
        }
    )


def _build(
    subject: asn1_x509.Name,
    issuer: asn1_x509.Name,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    key_usage: set[str],
    sign: Signer,
    authority_key_id: bytes | None,
    now: dt.datetime | None,
) -> x509.Certificate:
    start = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0) - BACKDATE
    spki = _spki(public_key)
    skid = hashlib.sha1(spki["public_key"].contents[1:]).digest()  # noqa: S324 - RFC 5280 id
    extensions: list[dict[str, object]] = [
        {"extn_id": "basic_constraints", "critical": True, "extn_value": {"ca": False}},
        {"extn_id": "key_usage", "critical": True, "extn_value": key_usage},
        {"extn_id": "key_identifier", "critical": False, "extn_value": skid},
    ]
    if authority_key_id is not None:
        extensions.append(
            {
                "extn_id": "authority_key_identifier",
                "critical": False,
                "extn_value": {"key_identifier": authority_key_id},
            }
        )
    tbs = asn1_x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": int.from_bytes(os.urandom(16), "big") >> 1,
            "signature": {"algorithm": "sha256_ecdsa"},
            "issuer": issuer,
            "validity": {"not_before": _time(start), "not_after": _time(start + VALIDITY)},
            "subject": subject,
            "subject_public_key_info": spki,
            "extensions": extensions,
        }
    )
    certificate = asn1_x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": {"algorithm": "sha256_ecdsa"},
            "signature_value": sign(tbs.dump()),
        }
    )
    return x509.load_der_x509_certificate(bytes(certificate.dump()))


def make_party_certificate(
    public_key: ec.EllipticCurvePublicKey,
    sign: Signer,
    role: Role,
    name: str,
    *,
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """A party's self-signed certificate for its file key (EC P-256)."""
    if not isinstance(public_key.curve, ec.SECP256R1):
        raise PartyCertificateError("a party key is EC P-256")
    subject = _name(check_party_name(name), ROLE_PREFIX + role.value)
    return _build(
        subject, subject, public_key, {"digital_signature", "key_agreement"}, sign, None, now
    )


def make_letter_certificate(
    public_key: rsa.RSAPublicKey,
    party_certificate: x509.Certificate,
    sign: Signer,
    *,
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """The mailer's letter-key certificate, issued by its party certificate."""
    role, name = party_identity(party_certificate)
    if role is not Role.MAILER:
        raise PartyCertificateError("only a mailer has a letter key")
    issuer = asn1_x509.Certificate.load(
        party_certificate.public_bytes(serialization.Encoding.DER)
    ).subject
    skid = party_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    return _build(
        _name(name, LETTER_ROLE),
        issuer,
        public_key,
        {"key_encipherment"},
        sign,
        skid.value.digest,
        now,
    )


def _attribute(certificate: x509.Certificate, oid: x509.ObjectIdentifier) -> str:
    values = certificate.subject.get_attributes_for_oid(oid)
    if len(values) != 1:
        raise PartyCertificateError("not a sealcard party certificate (subject)")
    return str(values[0].value)


def party_identity(certificate: x509.Certificate) -> tuple[Role, str]:
    """(role, name) from a party certificate's subject; PartyCertificateError if it is none."""
    unit = _attribute(certificate, NameOID.ORGANIZATIONAL_UNIT_NAME)
    if (
        not unit.startswith(ROLE_PREFIX)
        or _attribute(certificate, NameOID.ORGANIZATION_NAME) != ORGANISATION
    ):
        raise PartyCertificateError("not a sealcard party certificate (subject)")
    try:
        role = Role(unit[len(ROLE_PREFIX) :])
    except ValueError:
        raise PartyCertificateError(f"unknown party role in {unit!r}") from None
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise PartyCertificateError("a party certificate holds an EC P-256 key")
    try:
        certificate.verify_directly_issued_by(certificate)
    except (ValueError, TypeError, Exception) as exc:
        raise PartyCertificateError("the party certificate's self-signature is invalid") from exc
    return role, check_party_name(_attribute(certificate, NameOID.COMMON_NAME))


def check_letter_certificate(
    letter: x509.Certificate, party_certificate: x509.Certificate
) -> rsa.RSAPublicKey:
    """The mailer's RSA letter key, if `letter` was issued by that mailer's party key."""
    try:
        letter.verify_directly_issued_by(party_certificate)
    except Exception as exc:
        raise PartyCertificateError("the letter certificate is not the mailer's") from exc
    if _attribute(letter, NameOID.ORGANIZATIONAL_UNIT_NAME) != LETTER_ROLE:
        raise PartyCertificateError("not a mailer letter certificate")
    key = letter.public_key()
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
        raise PartyCertificateError("a letter key is RSA, 2048 bits or more")
    return key


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, lower-case hex (how registries name a certificate)."""
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle (or one DER certificate)."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise PartyCertificateError("not an X.509 certificate file (PEM or DER)") from None


def _self_signed_ec(certificate: x509.Certificate) -> bool:
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    try:
        certificate.verify_directly_issued_by(certificate)
    except Exception:
        return False
    return True


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


@dataclass(frozen=True)
class PartyBundle:
    """What a party hands to the others once: its party certificate, plus by role
    the issuer HSM's certificate (its key signs blobs and PIN letters, and is the issuer key
    the provider injects into every card), the provider's root CA (card attestation), or the
    mailer's letter certificate (the RSA key PIN letters are encrypted to)."""

    party: x509.Certificate
    role: Role
    name: str
    extra: x509.Certificate | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.party)

    def pem(self) -> bytes:
        certs = [self.party] + ([self.extra] if self.extra is not None else [])
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)

    @classmethod
    def parse(cls, data: bytes, *, own: bool = False) -> PartyBundle:
        """A certificate file as handed over; `own`: our own identity file, where the
        provider's root CA may still be missing (`keys export` adds it)."""
        certificates = load_certificates(data)
        if not certificates:
            raise PartyCertificateError("no certificate in the file")
        party, *rest = certificates
        role, name = party_identity(party)
        wanted = EXTRA_BY_ROLE.get(role)
        optional = own and role is Role.PROVIDER and not rest
        if len(rest) != (0 if wanted is None else 1) and not optional:
            needs = f"its party certificate and {wanted}" if wanted else "its party certificate"
            raise PartyCertificateError(f"{a(role)}'s certificate file holds {needs}")
        extra = rest[0] if rest else None
        if extra is not None:
            if role is Role.MAILER:
                check_letter_certificate(extra, party)
            elif role is Role.PROVIDER and not (_self_signed_ec(extra) and _is_ca(extra)):
                raise PartyCertificateError("the provider's second certificate is not a root CA")
            elif role is Role.ISSUER and not (_self_signed_ec(extra) and not _is_ca(extra)):
                raise PartyCertificateError("the issuer's second certificate is not its HSM's")
        return cls(party, role, name, extra)


EXTRA_BY_ROLE: Final = {
    Role.ISSUER: "the issuer HSM certificate",
    Role.PROVIDER: "the provider root CA certificate",
    Role.MAILER: "the letter key certificate",
}
