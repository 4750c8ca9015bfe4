"""X.509 profile, signed device key and verify_card: good chain and each way it can be wrong."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from sealcard.errors import ConfigurationError, VerificationError
from sealcard.formats.attestation import (
    SIGNED_DEVICE_KEY_MAGIC,
    CardPublicData,
    Outcome,
    signed_device_key_message,
    verify_card,
    verify_signed_device_key,
)
from sealcard.formats.certificates import CardKeyRole, create_root_certificate
from sealcard.parties.provider import ROOT_CERT_FILE, ROOT_KEY_FILE, ProviderCA

SERIAL = bytes.fromhex("A1B2C3D4E5F60718")
OTHER_SERIAL = bytes.fromhex("0102030405060708")
PASSPHRASE = b"correct horse battery"


@dataclasses.dataclass
class FakeCardKeys:
    device: rsa.RSAPrivateKey
    auth: ec.EllipticCurvePrivateKey


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ProviderCA:
    return ProviderCA.create(tmp_path_factory.mktemp("ca"), PASSPHRASE)


@pytest.fixture(scope="module")
def keys() -> FakeCardKeys:
    return FakeCardKeys(
        rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP256R1())
    )


def card_sign(keys: FakeCardKeys, serial: bytes) -> bytes:
    message = signed_device_key_message(serial, keys.device.public_key())
    return keys.auth.sign(message, ec.ECDSA(hashes.SHA256()))


@pytest.fixture(scope="module")
def good(ca: ProviderCA, keys: FakeCardKeys) -> CardPublicData:
    device = keys.device.public_key()
    auth = keys.auth.public_key()
    return CardPublicData(
        serial=SERIAL,
        device_public_key=device,
        issuer_auth_public_key=auth,
        device_key_certificate=ca.issue(CardKeyRole.DEVICE, device, SERIAL),
        issuer_auth_key_certificate=ca.issue(CardKeyRole.ISSUER_AUTH, auth, SERIAL),
        signed_device_key=card_sign(keys, SERIAL),
    )


def failures_of(ca: ProviderCA, data: CardPublicData) -> set[str]:
    report = verify_card(ca.certificate, data)
    assert not report.genuine
    return {c.name for c in report.failures}


def test_good_chain_is_genuine(ca: ProviderCA, good: CardPublicData) -> None:
    report = verify_card(ca.certificate, good)
    assert report.genuine, [c.reason for c in report.failures]
    assert report.outcome("signed_device_key") is Outcome.OK
    assert report.outcome("device_key_matches") is Outcome.OK


def test_leaf_subject_carries_the_serial(good: CardPublicData) -> None:
    cert = good.device_key_certificate
    assert cert is not None
    assert (
        cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == SERIAL.hex().upper()
    )
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == f"sealcard device key {SERIAL.hex().upper()}"
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_encipherment and not usage.digital_signature
    assert len(cert.public_bytes(Encoding.DER)) <= 1024


def test_wrong_root_fails(good: CardPublicData) -> None:
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_root = create_root_certificate(other_key)
    report = verify_card(other_root, good)
    assert not report.genuine
    names = {c.name for c in report.failures}
    assert {"issuer_auth_cert_signed", "device_cert_signed"} <= names
    assert any("not signed by this provider root" in c.reason for c in report.failures)


def test_swapped_key_fails(ca: ProviderCA, good: CardPublicData) -> None:
    stranger = rsa.generate_private_key(65537, 2048).public_key()
    swapped = dataclasses.replace(good, device_public_key=stranger)
    names = failures_of(ca, swapped)
    assert "device_key_matches" in names
    assert "signed_device_key" in names


def test_certificates_in_the_wrong_slots_fail(ca: ProviderCA, good: CardPublicData) -> None:
    swapped = dataclasses.replace(
        good,
        device_key_certificate=good.issuer_auth_key_certificate,
        issuer_auth_key_certificate=good.device_key_certificate,
    )
    names = failures_of(ca, swapped)
    assert {"device_key_matches", "issuer_auth_key_matches"} <= names


def test_wrong_serial_fails(ca: ProviderCA, good: CardPublicData) -> None:
    names = failures_of(ca, dataclasses.replace(good, serial=OTHER_SERIAL))
    assert {"device_serial_matches", "issuer_auth_serial_matches", "signed_device_key"} <= names


def test_bad_signed_device_key_fails(
    ca: ProviderCA, good: CardPublicData, keys: FakeCardKeys
) -> None:
    forged = card_sign(keys, OTHER_SERIAL)
    names = failures_of(ca, dataclasses.replace(good, signed_device_key=forged))
    assert names == {"signed_device_key"}


def test_signed_device_key_alone_certifies_the_device_key(
    ca: ProviderCA, good: CardPublicData
) -> None:
    only_signed = dataclasses.replace(good, device_key_certificate=None)
    report = verify_card(ca.certificate, only_signed)
    assert report.genuine
    assert report.outcome("device_cert") is Outcome.SKIP
    neither = dataclasses.replace(only_signed, signed_device_key=None)
    assert "device_key_certified" in failures_of(ca, neither)


def test_missing_issuer_auth_certificate_fails(ca: ProviderCA, good: CardPublicData) -> None:
    names = failures_of(ca, dataclasses.replace(good, issuer_auth_key_certificate=None))
    assert "issuer_auth_cert" in names


def test_expired_chain_fails(ca: ProviderCA, good: CardPublicData) -> None:
    far_future = dt.datetime.now(dt.UTC) + dt.timedelta(days=365 * 30)
    report = verify_card(ca.certificate, good, now=far_future)
    assert not report.genuine
    assert report.outcome("root") is Outcome.FAIL


def test_signed_device_key_message_layout(keys: FakeCardKeys) -> None:
    message = signed_device_key_message(SERIAL, keys.device.public_key())
    assert message[:4] == SIGNED_DEVICE_KEY_MAGIC
    assert message[4] == 1
    assert message[5] == len(SERIAL)
    assert message[6 : 6 + len(SERIAL)] == SERIAL
    modulus = message[6 + len(SERIAL) : 6 + len(SERIAL) + 256]
    assert int.from_bytes(modulus, "big") == keys.device.public_key().public_numbers().n
    assert message[-4:] == b"\x03\x01\x00\x01"
    with pytest.raises(VerificationError):
        verify_signed_device_key(
            b"\x30\x00", SERIAL, keys.device.public_key(), keys.auth.public_key()
        )


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_leaves_pass_openssl_verify(ca: ProviderCA, good: CardPublicData, tmp_path: Path) -> None:
    root = tmp_path / "root.pem"
    root.write_bytes(ca.certificate.public_bytes(Encoding.PEM))
    for name, cert in (
        ("device", good.device_key_certificate),
        ("auth", good.issuer_auth_key_certificate),
    ):
        assert cert is not None
        leaf = tmp_path / f"{name}.pem"
        leaf.write_bytes(cert.public_bytes(Encoding.PEM))
        result = subprocess.run(
            ["openssl", "verify", "-CAfile", str(root), str(leaf)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    other = create_root_certificate(ec.generate_private_key(ec.SECP256R1()))
    (tmp_path / "other.pem").write_bytes(other.public_bytes(Encoding.PEM))
    refused = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tmp_path / "other.pem"), str(tmp_path / "auth.pem")],
        capture_output=True,
        check=False,
    )
    assert refused.returncode != 0


def test_ca_key_is_stored_encrypted_with_mode_0600(ca: ProviderCA) -> None:
    assert ca.directory is not None
    key_file = ca.directory / ROOT_KEY_FILE
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    pem = key_file.read_bytes()
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in pem
    loaded = ProviderCA.load(ca.directory, PASSPHRASE)
    assert loaded.certificate == ca.certificate
    with pytest.raises(ConfigurationError, match="wrong passphrase"):
        ProviderCA.load(ca.directory, b"not the passphrase")


def test_ca_refuses_to_overwrite_and_short_passphrases(ca: ProviderCA, tmp_path: Path) -> None:
    assert ca.directory is not None
    with pytest.raises(ConfigurationError, match="exists"):
        ProviderCA.create(ca.directory, PASSPHRASE)
    with pytest.raises(ConfigurationError, match="at least"):
        ProviderCA.create(tmp_path / "new", b"short")
    assert not (tmp_path / "new" / ROOT_CERT_FILE).exists()


def test_root_profile(ca: ProviderCA) -> None:
    constraints = ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = ca.certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign
    key = ca.certificate.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert isinstance(key.curve, ec.SECP256R1)
