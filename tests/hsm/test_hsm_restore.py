"""Seed backup and restore: m of n SLIP-39 shares rebuild an HSM that derives the same keys."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hsm_helpers import start_service, stop_service

from sealcard.crypto.secret_sharing import SecretSharingError, combine_shares
from sealcard.hsm.config import IssuerHsmSettings, load_settings
from sealcard.hsm.issuer_client import IssuerHsmClient, SealRequest
from sealcard.hsm.issuer_keys import ISSUER_KEY_INFO, export_seed_shares
from sealcard.hsm.system_hsm import DeviceAuthKeys, RequestSigner
from sealcard.hsm.token import Token

pytestmark = pytest.mark.hsm

THRESHOLD, SHARES = 3, 5
PATHS = ["m/44'/0'/0'/0/0", "m/44'/0'/0'/0/12345", "m/0'/1/2'/3", "m/7"]


def _restore(home: Path, shares: list[str], request_key: Path) -> subprocess.CompletedProcess[str]:
    """A fresh HSM home, restored in its own process (one SoftHSM configuration per process)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "sealcard.hsm.setup",
            "--home",
            str(home),
            "--restore",
            "--request-key",
            str(request_key),
        ],
        input="\n".join(shares) + "\n",
        text=True,
        capture_output=True,
        timeout=120,
        check=False,
    )


def _user_keys(
    client: IssuerHsmClient, auth_keys: DeviceAuthKeys, device_der: bytes
) -> list[bytes]:
    point = auth_keys.generate()[0]
    requests = [
        SealRequest(f"r{i}", bytes(8), device_der, point, path, "n", "a", "none")
        for i, path in enumerate(PATHS)
    ]
    return [r.user_public_key for r in client.seal_batch(requests)]


def test_restore_from_threshold_shares_derives_identical_keys(
    service_dirs: Callable[[str], Path],
    hsm_home: IssuerHsmSettings,
    issuer_token: Token,
    client: IssuerHsmClient,
    signer: RequestSigner,
    auth_keys: DeviceAuthKeys,
) -> None:
    shares = export_seed_shares(issuer_token, THRESHOLD, SHARES)
    assert len(shares) == SHARES
    restored_home = service_dirs("restored") / "home"
    done = _restore(restored_home, [shares[1], shares[3], shares[4]], hsm_home.request_public_key)
    assert done.returncode == 0, done.stderr
    for share in shares:  # no share, nor the seed, is written into the new home
        # Three words in a row: one word alone is often an English word of a config file
        # ("level" in SoftHSM's log.level failed a run).
        words = " ".join(share.split()[4:7])
        for path in restored_home.rglob("*"):
            if path.is_file() and path.suffix in (".toml", ".pem", ".conf"):
                assert words not in path.read_text(errors="replace")
    settings = load_settings(restored_home)
    proc = start_service(restored_home, settings.socket_path)
    try:
        device_der = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
        der = device_der.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        with IssuerHsmClient(settings.socket_path, signer) as restored:
            assert restored.xpub("m/44'/0'/0'/0") == client.xpub("m/44'/0'/0'/0")
            assert _user_keys(restored, auth_keys, der) == _user_keys(client, auth_keys, der)
            # a new token, but the issuer key comes from the seed: the same issuer key
            assert _der(restored.issuer_public_key()) == _der(client.issuer_public_key())
    finally:
        stop_service(proc)


def test_fewer_than_threshold_shares_fail(
    tmp_path: Path, hsm_home: IssuerHsmSettings, issuer_token: Token
) -> None:
    shares = export_seed_shares(issuer_token, THRESHOLD, SHARES)
    with pytest.raises(SecretSharingError):
        combine_shares(shares[: THRESHOLD - 1])
    restored_home = tmp_path / "not-restored"
    done = _restore(restored_home, shares[: THRESHOLD - 1], hsm_home.request_public_key)
    assert done.returncode != 0
    assert "combine" in done.stderr
    assert not (restored_home / "config.toml").exists()


def _der(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_the_issuer_key_is_made_from_the_seed_as_documented(
    issuer_token: Token, client: IssuerHsmClient
) -> None:
    """docs/hsm.md: d = (HKDF-SHA256(seed, info, 40 bytes) mod (n - 1)) + 1, computed here
    with the standard library only (RFC 5869 by hand)."""
    shares = export_seed_shares(issuer_token, 2, 2)
    seed = combine_shares(shares)
    prk = hmac.new(bytes(32), seed, hashlib.sha256).digest()  # extract, no salt
    okm, block = b"", b""
    for counter in (1, 2):
        block = hmac.new(prk, block + ISSUER_KEY_INFO + bytes([counter]), hashlib.sha256).digest()
        okm += block
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    scalar = int.from_bytes(okm[:40], "big") % (order - 1) + 1
    expected = ec.derive_private_key(scalar, ec.SECP256R1()).public_key()
    assert _der(client.issuer_public_key()) == _der(expected)
