"""The card provider: its root CA on disk, and step A (initializing a blank card).

The root private key is stored only as encrypted PKCS#8 (the best
encryption `cryptography` offers) under a passphrase the caller supplies:
from `SEALCARD_PROVIDER_PASSPHRASE`, a prompt, or a file descriptor in the
CLI; never argv. The key file is created with mode 0600 and never
overwritten.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    load_pem_private_key,
)

from sealcard.card.constants import CertRef, State
from sealcard.card.encoding import CardStatus
from sealcard.card.session import SealcardSession
from sealcard.crypto.keys import public_keys_equal
from sealcard.errors import ConfigurationError, SealcardError, VerificationError
from sealcard.files import prepare_dir, write_new_file
from sealcard.formats.attestation import (
    AttestationReport,
    CardPublicData,
    verify_card,
    verify_signed_device_key,
)
from sealcard.formats.certificates import (
    DEFAULT_ORGANISATION,
    DEFAULT_ROOT_NAME,
    CardKeyRole,
    create_leaf_certificate,
    create_root_certificate,
    load_certificate,
)
from sealcard.transport.connection import TrafficCount

ROOT_CERT_FILE: Final = "root.pem"
ROOT_KEY_FILE: Final = "root-key.pem"
PASSPHRASE_ENV: Final = "SEALCARD_PROVIDER_PASSPHRASE"  # noqa: S105 (a variable name)
MIN_PASSPHRASE_LENGTH: Final = 8
KEY_FILE_MODE: Final = 0o600
CA_DIR_MODE: Final = 0o700
PUBLIC_FILE_MODE: Final = 0o644
RSA_KEY_BITS: Final = 2048
RSA_EXPONENT: Final = 65537


class CardNotBlankError(SealcardError):
    """Step A needs a card in the BLANK state."""


def check_passphrase(passphrase: bytes) -> None:
    """A new CA's passphrase must be long enough (checked before any file is written)."""
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise ConfigurationError(
            f"the passphrase must be at least {MIN_PASSPHRASE_LENGTH} characters"
        )


def passphrase_from_env() -> bytes | None:
    """The provider passphrase from SEALCARD_PROVIDER_PASSPHRASE, or None when unset."""
    value = os.environ.get(PASSPHRASE_ENV)
    return None if value is None else value.encode("utf-8")


def load_root_certificate(path: Path) -> x509.Certificate:
    """A provider root certificate from a PEM (or DER) file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read root certificate {path}: {exc.strerror}") from exc
    try:
        return load_certificate(data)
    except ValueError as exc:
        raise ConfigurationError(f"{path}: {exc}; give the provider's root.pem") from None


@dataclass(frozen=True)
class ProviderCA:
    """The provider's root CA: certificate and (decrypted, in memory only) private key."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    directory: Path | None = None

    @classmethod
    def create(
        cls,
        directory: Path,
        passphrase: bytes,
        *,
        common_name: str = DEFAULT_ROOT_NAME,
        organisation: str = DEFAULT_ORGANISATION,
        now: dt.datetime | None = None,
    ) -> ProviderCA:
        """Make a new P-256 root CA; write root.pem and the encrypted root-key.pem (0600)."""
        check_passphrase(passphrase)
        cls.prepare_directory(directory)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = create_root_certificate(
            key, common_name=common_name, organisation=organisation, now=now
        )
        encrypted = key.private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(passphrase)
        )
        write_new_file(directory / ROOT_KEY_FILE, encrypted, KEY_FILE_MODE)
        certificate_pem = cert.public_bytes(Encoding.PEM)
        write_new_file(directory / ROOT_CERT_FILE, certificate_pem, PUBLIC_FILE_MODE)
        return cls(cert, key, directory)

    @staticmethod
    def prepare_directory(directory: Path) -> bool:
        """Create the CA folder if needed and check it can take a new CA (before the passphrase
        is asked for): writable, and no root.pem or root-key.pem to overwrite. Returns whether
        the folder was created."""
        fix = "give another --out-dir"
        for name in (ROOT_CERT_FILE, ROOT_KEY_FILE):
            if (directory / name).exists():
                raise ConfigurationError(
                    f"{directory / name} exists; refusing to overwrite a CA ({fix})"
                )
        return prepare_dir(directory, what="the CA folder", fix=fix, mode=CA_DIR_MODE)

    @staticmethod
    def check_directory(directory: Path) -> None:
        """Check that `directory` holds a CA (root.pem readable as a certificate, root-key.pem
        present) before anyone is asked for its passphrase."""
        hint = (
            "create one with `sealcard provider ca init --out-dir DIR`, or point --ca-dir "
            "(or $SEALCARD_PROVIDER_CA_DIR) at it"
        )
        if not directory.is_dir():
            raise ConfigurationError(f"no provider CA folder at {directory}: {hint}")
        for name in (ROOT_CERT_FILE, ROOT_KEY_FILE):
            if not (directory / name).is_file():
                raise ConfigurationError(f"no provider CA in {directory} (no {name}): {hint}")
        load_root_certificate(directory / ROOT_CERT_FILE)

    @classmethod
    def load(cls, directory: Path, passphrase: bytes) -> ProviderCA:
        """Open an existing CA directory (root.pem, root-key.pem) with its passphrase."""
        cls.check_directory(directory)
        cert = load_root_certificate(directory / ROOT_CERT_FILE)
        key_path = directory / ROOT_KEY_FILE
        try:
            data = key_path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read {key_path}: {exc.strerror}") from exc
        if b"ENCRYPTED PRIVATE KEY" not in data:
            raise ConfigurationError(f"{key_path} is not an encrypted PKCS#8 key; refusing it")
        try:
            key = load_pem_private_key(data, password=passphrase)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(
                f"cannot open {key_path}: wrong passphrase or damaged file"
            ) from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigurationError(f"{key_path} does not hold an EC key")
        if not public_keys_equal(key.public_key(), _ec_public(cert)):
            raise ConfigurationError(f"{key_path} is not the key of {directory / ROOT_CERT_FILE}")
        return cls(cert, key, directory)

    def issue(
        self,
        role: CardKeyRole,
        public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
        serial: bytes,
        *,
        now: dt.datetime | None = None,
    ) -> x509.Certificate:
        """A root-signed leaf certificate for one card key."""
        return create_leaf_certificate(
            role, public_key, serial, self.certificate, self.private_key, now=now
        )


def _ec_public(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConfigurationError("the root certificate does not hold an EC key")
    return key


@dataclass(frozen=True)
class InitResult:
    """What step A produced on one card, and what it cost."""

    serial: bytes
    device_public_key: rsa.RSAPublicKey
    issuer_auth_public_key: ec.EllipticCurvePublicKey
    device_key_certificate: x509.Certificate | None
    issuer_auth_key_certificate: x509.Certificate
    signed_device_key: bytes | None
    status: CardStatus
    keygen_seconds: float
    total_seconds: float
    traffic: TrafficCount

    @property
    def public_data(self) -> CardPublicData:
        return CardPublicData(
            serial=self.serial,
            state=int(self.status.state),
            device_public_key=self.device_public_key,
            issuer_auth_public_key=self.issuer_auth_public_key,
            device_key_certificate=self.device_key_certificate,
            issuer_auth_key_certificate=self.issuer_auth_key_certificate,
            signed_device_key=self.signed_device_key,
        )


def _check_device_key(key: rsa.RSAPublicKey) -> None:
    numbers = key.public_numbers()
    if key.key_size != RSA_KEY_BITS or numbers.e != RSA_EXPONENT:
        raise VerificationError(
            f"card made an RSA key of {key.key_size} bits, e={numbers.e}; expected 2048, 65537"
        )


def initialize_card(
    session: SealcardSession,
    ca: ProviderCA,
    issuer_public_key: ec.EllipticCurvePublicKey,
    serial: bytes | None = None,
    *,
    certify_device_key: bool = True,
    sign_device_key: bool = True,
    now: dt.datetime | None = None,
) -> InitResult:
    """Step A on one blank card, ending with initialization closed.

    Generates both key pairs on the card, sets the serial (`serial`, or one
    the card draws), injects the issuer key, issues and stores the root-signed
    certificates, has the card sign its device key, checks everything against
    the root before closing, then closes. At least one of
    `certify_device_key` / `sign_device_key` must be on.
    """
    if not (certify_device_key or sign_device_key):
        raise ValueError("certify the device key, have the card sign it, or both")
    if session.state != State.BLANK:
        raise CardNotBlankError(f"card is {session.status.state_name}, step A needs a BLANK card")
    before = session.traffic.apdus, session.traffic.bytes_sent, session.traffic.bytes_received
    start = time.perf_counter()
    device_key = session.generate_device_key()
    auth_key = session.generate_issuer_auth_key()
    keygen_seconds = time.perf_counter() - start
    _check_device_key(device_key)
    if serial is None:
        serial = session.generate_serial()
    else:
        session.set_serial(serial)
    session.put_issuer_key(issuer_public_key)
    auth_cert = ca.issue(CardKeyRole.ISSUER_AUTH, auth_key, serial, now=now)
    session.put_certificate(CertRef.ISSUER_AUTH_KEY, auth_cert)
    device_cert = None
    if certify_device_key:
        device_cert = ca.issue(CardKeyRole.DEVICE, device_key, serial, now=now)
        session.put_certificate(CertRef.DEVICE_KEY, device_cert)
    signed = None
    if sign_device_key:
        signed = session.sign_device_key()
        verify_signed_device_key(signed, serial, device_key, auth_key)
    pending = CardPublicData(
        serial=serial,
        device_public_key=device_key,
        issuer_auth_public_key=auth_key,
        device_key_certificate=device_cert,
        issuer_auth_key_certificate=auth_cert,
        signed_device_key=signed,
    )
    verify_card(ca.certificate, pending, now=now).raise_unless_genuine()
    session.close_initialization()
    total = time.perf_counter() - start
    traffic = TrafficCount(
        session.traffic.apdus - before[0],
        session.traffic.bytes_sent - before[1],
        session.traffic.bytes_received - before[2],
    )
    return InitResult(
        serial=serial,
        device_public_key=device_key,
        issuer_auth_public_key=auth_key,
        device_key_certificate=device_cert,
        issuer_auth_key_certificate=auth_cert,
        signed_device_key=signed,
        status=session.status,
        keygen_seconds=keygen_seconds,
        total_seconds=total,
        traffic=traffic,
    )


def read_card_public_data(session: SealcardSession) -> CardPublicData:
    """Read every public item from the card (GET DATA of each object)."""
    status = session.refresh_status()
    return CardPublicData(
        serial=status.serial,
        state=int(status.state),
        device_public_key=session.device_public_key(),
        issuer_auth_public_key=session.issuer_auth_public_key(),
        issuer_public_key=session.issuer_public_key(),
        device_key_certificate=session.device_key_certificate(),
        issuer_auth_key_certificate=session.issuer_auth_key_certificate(),
        signed_device_key=session.signed_device_key(),
    )


def check_card(
    session: SealcardSession, root_certificate: x509.Certificate, *, now: dt.datetime | None = None
) -> tuple[CardPublicData, AttestationReport]:
    """Read a card's public data and check its attestation chain against the provider root."""
    data = read_card_public_data(session)
    return data, verify_card(root_certificate, data, now=now)
