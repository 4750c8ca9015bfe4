"""Card attestation: the signed device key message and the whole-chain check of a card.

Pure (no I/O): the caller reads the card's public data and hands it in as
`CardPublicData`; `verify_card` answers with an `AttestationReport` that
lists every check with a reason.

Signed device key message (docs/apdu.md, SIGN DEVICE KEY):

    "SCDK" || 01 || len(serial) || serial || modulus (256 bytes)
    || len(exponent) || exponent (big-endian, no leading zeros)

signed by the card's issuer authentication key, ECDSA with SHA-256, DER.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sealcard.crypto.keys import PublicKey, public_keys_equal
from sealcard.errors import VerificationError
from sealcard.formats.certificates import serial_text, subject_serial

SIGNED_DEVICE_KEY_MAGIC: Final = b"SCDK"
SIGNED_DEVICE_KEY_VERSION: Final = 0x01
RSA_MODULUS_BYTES: Final = 256
MAX_SERIAL_BYTES: Final = 255


def _minimal(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def signed_device_key_message(serial: bytes, device_public_key: rsa.RSAPublicKey) -> bytes:
    """The exact bytes the card signs in SIGN DEVICE KEY."""
    if len(serial) > MAX_SERIAL_BYTES:
        raise ValueError("serial too long")
    if device_public_key.key_size != RSA_MODULUS_BYTES * 8:
        raise ValueError(f"device key must be RSA-2048, got {device_public_key.key_size} bits")
    numbers = device_public_key.public_numbers()
    exponent = _minimal(numbers.e)
    return b"".join(
        (
            SIGNED_DEVICE_KEY_MAGIC,
            bytes((SIGNED_DEVICE_KEY_VERSION, len(serial))),
            serial,
            numbers.n.to_bytes(RSA_MODULUS_BYTES, "big"),
            bytes((len(exponent),)),
            exponent,
        )
    )


def verify_signed_device_key(
    signature: bytes,
    serial: bytes,
    device_public_key: rsa.RSAPublicKey,
    issuer_auth_public_key: ec.EllipticCurvePublicKey,
) -> None:
    """Raise VerificationError unless `signature` is the card's signature over its device key."""
    message = signed_device_key_message(serial, device_public_key)
    try:
        issuer_auth_public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise VerificationError("signed device key does not verify") from exc


@dataclass(frozen=True)
class CardPublicData:
    """Everything public a card reports, as read from it (None: not on the card)."""

    serial: bytes | None
    state: int | None = None
    device_public_key: rsa.RSAPublicKey | None = None
    issuer_auth_public_key: ec.EllipticCurvePublicKey | None = None
    issuer_public_key: ec.EllipticCurvePublicKey | None = None
    device_key_certificate: x509.Certificate | None = None
    issuer_auth_key_certificate: x509.Certificate | None = None
    signed_device_key: bytes | None = None


class Outcome(Enum):
    OK = "ok"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Check:
    """One step of the attestation check: its name, outcome and why."""

    name: str
    outcome: Outcome
    reason: str


@dataclass
class AttestationReport:
    """All checks of one card against one provider root; genuine when none failed."""

    checks: list[Check] = field(default_factory=list)

    @property
    def genuine(self) -> bool:
        return bool(self.checks) and all(c.outcome is not Outcome.FAIL for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.outcome is Outcome.FAIL]

    def outcome(self, name: str) -> Outcome:
        for check in self.checks:
            if check.name == name:
                return check.outcome
        raise KeyError(name)

    def add(self, name: str, ok: bool, reason: str) -> bool:
        self.checks.append(Check(name, Outcome.OK if ok else Outcome.FAIL, reason))
        return ok

    def skip(self, name: str, reason: str) -> None:
        self.checks.append(Check(name, Outcome.SKIP, reason))

    def raise_unless_genuine(self) -> None:
        if not self.genuine:
            reasons = "; ".join(f"{c.name}: {c.reason}" for c in self.failures)
            raise VerificationError(f"card is not genuine: {reasons}")


def _check_root(report: AttestationReport, root: x509.Certificate, now: dt.datetime) -> bool:
    try:
        constraints = root.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = root.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound as exc:
        return report.add("root", False, f"root certificate lacks an extension: {exc}")
    if not constraints.ca or not usage.key_cert_sign:
        return report.add("root", False, "root certificate is not a CA (CA:TRUE, keyCertSign)")
    try:
        root.verify_directly_issued_by(root)
    except InvalidSignature:
        return report.add("root", False, "root certificate's self-signature does not verify")
    except (ValueError, TypeError) as exc:
        return report.add("root", False, f"root certificate is not validly self-signed: {exc}")
    if not root.not_valid_before_utc <= now <= root.not_valid_after_utc:
        return report.add("root", False, "root certificate is outside its validity period")
    return report.add("root", True, "self-signed CA certificate, valid now")


def _check_leaf(
    report: AttestationReport,
    label: str,
    certificate: x509.Certificate,
    card_key: PublicKey | None,
    serial: bytes,
    root: x509.Certificate,
    now: dt.datetime,
) -> bool:
    """Signature by root, validity, key equality, serial in subject; one check each."""
    ok = True
    try:
        certificate.verify_directly_issued_by(root)
        ok &= report.add(f"{label}_cert_signed", True, "issued and signed by the provider root")
    except InvalidSignature:
        reason = "not signed by this provider root (the signature does not verify)"
        ok &= report.add(f"{label}_cert_signed", False, reason)
    except (ValueError, TypeError) as exc:
        reason = f"not signed by this provider root ({exc})"
        ok &= report.add(f"{label}_cert_signed", False, reason)
    in_period = certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc
    ok &= report.add(
        f"{label}_cert_valid_now",
        in_period,
        "within its validity period" if in_period else "outside its validity period",
    )
    cert_key = certificate.public_key()
    if card_key is None:
        ok &= report.add(f"{label}_key_matches", False, "the card reports no such public key")
    elif not isinstance(cert_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        ok &= report.add(f"{label}_key_matches", False, "certificate holds an unexpected key type")
    else:
        same = public_keys_equal(cert_key, card_key)
        reason = (
            "certificate key is the key the card reports"
            if same
            else "certificate key differs from the key the card reports"
        )
        ok &= report.add(f"{label}_key_matches", same, reason)
    in_subject = subject_serial(certificate)
    expected = serial_text(serial)
    same_serial = in_subject == expected
    reason = (
        f"subject serialNumber {expected} is the card's serial"
        if same_serial
        else f"subject serialNumber {in_subject!r} is not the card's serial {expected}"
    )
    ok &= report.add(f"{label}_serial_matches", same_serial, reason)
    return ok


def verify_card(
    root_certificate: x509.Certificate,
    card: CardPublicData,
    *,
    now: dt.datetime | None = None,
) -> AttestationReport:
    """Check a card's whole attestation chain against the provider root.

    The card is genuine when: the root is a valid CA; the issuer
    authentication key certificate is root-signed, valid, certifies the key
    the card reports and names the card's serial; and the device key is
    certified at least one way: a root-signed device key certificate (same
    checks) and/or a signed device key that verifies under the certified
    issuer authentication key. Whatever is present must verify.
    """
    when = now or dt.datetime.now(dt.UTC)
    report = AttestationReport()
    _check_root(report, root_certificate, when)
    serial = card.serial
    if not report.add("serial", serial is not None, "card has a serial" if serial else "no serial"):
        return report
    assert serial is not None
    auth_cert = card.issuer_auth_key_certificate
    auth_ok = False
    if auth_cert is None:
        report.add("issuer_auth_cert", False, "no issuer authentication key certificate on card")
    else:
        report.add("issuer_auth_cert", True, "present")
        auth_ok = _check_leaf(
            report,
            "issuer_auth",
            auth_cert,
            card.issuer_auth_public_key,
            serial,
            root_certificate,
            when,
        )
    device_cert_ok = False
    if card.device_key_certificate is None:
        report.skip("device_cert", "no device key certificate on card")
    else:
        report.add("device_cert", True, "present")
        device_cert_ok = _check_leaf(
            report,
            "device",
            card.device_key_certificate,
            card.device_public_key,
            serial,
            root_certificate,
            when,
        )
    signed_ok = _check_signed_device_key(report, card, serial, auth_cert if auth_ok else None)
    report.add(
        "device_key_certified",
        device_cert_ok or signed_ok,
        "device key is root-certified or signed by the certified issuer authentication key"
        if device_cert_ok or signed_ok
        else "device key is neither root-certified nor validly signed by the card",
    )
    return report


def _check_signed_device_key(
    report: AttestationReport,
    card: CardPublicData,
    serial: bytes,
    auth_cert: x509.Certificate | None,
) -> bool:
    name = "signed_device_key"
    if card.signed_device_key is None:
        report.skip(name, "no signed device key on card")
        return False
    if card.device_public_key is None:
        return report.add(name, False, "the card reports no device public key")
    if auth_cert is None:
        return report.add(name, False, "no valid issuer authentication key certificate to check it")
    auth_key = auth_cert.public_key()
    if not isinstance(auth_key, ec.EllipticCurvePublicKey):
        return report.add(name, False, "issuer authentication key certificate holds no EC key")
    try:
        verify_signed_device_key(card.signed_device_key, serial, card.device_public_key, auth_key)
    except (VerificationError, ValueError) as exc:
        return report.add(name, False, f"{exc} under the certified issuer authentication key")
    return report.add(name, True, "verifies under the certified issuer authentication key")


# ---- INTERNAL AUTHENTICATE (issue 3, docs/apdu.md) ---------------------------------------------

INTERNAL_AUTH_MAGIC: Final = b"SCIA"
INTERNAL_AUTH_CHALLENGE_MIN: Final = 8
INTERNAL_AUTH_CHALLENGE_MAX: Final = 64


def internal_authenticate_message(serial: bytes, challenge: bytes) -> bytes:
    """What INTERNAL AUTHENTICATE signs: "SCIA" || len(serial) || serial || challenge."""
    if len(serial) > MAX_SERIAL_BYTES:
        raise ValueError("serial too long")
    if not INTERNAL_AUTH_CHALLENGE_MIN <= len(challenge) <= INTERNAL_AUTH_CHALLENGE_MAX:
        raise ValueError(
            f"a challenge is {INTERNAL_AUTH_CHALLENGE_MIN} to {INTERNAL_AUTH_CHALLENGE_MAX} bytes"
        )
    return INTERNAL_AUTH_MAGIC + bytes((len(serial),)) + serial + challenge


def verify_internal_authenticate(
    signature: bytes,
    serial: bytes,
    challenge: bytes,
    issuer_auth_public_key: ec.EllipticCurvePublicKey,
) -> None:
    """Raise VerificationError unless `signature` is the card's answer to `challenge`.

    `issuer_auth_public_key` must be the *certified* key (taken from the
    root-signed issuer authentication key certificate that `verify_card`
    accepted), not merely the key the card reports.
    """
    message = internal_authenticate_message(serial, challenge)
    try:
        issuer_auth_public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise VerificationError("the card's INTERNAL AUTHENTICATE answer does not verify") from exc


def certified_issuer_auth_key(
    report: AttestationReport, card: CardPublicData
) -> ec.EllipticCurvePublicKey | None:
    """The issuer authentication key of a card whose attestation passed, from its certificate.

    None when the report is not genuine or the certificate holds no EC key.
    """
    cert = card.issuer_auth_key_certificate
    if not report.genuine or cert is None:
        return None
    key = cert.public_key()
    return key if isinstance(key, ec.EllipticCurvePublicKey) else None
