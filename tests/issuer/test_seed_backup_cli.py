"""Seed backup and disaster recovery through the CLI: `issuer hsm backup-seed` writes m-of-n
SLIP-39 shares, `issuer hsm init --restore` on a fresh home takes any m of them, and the
restored issuer HSM derives exactly the same keys (same xpub at the derivation base)."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

pytestmark = pytest.mark.issuer

THRESHOLD = 2
SHARES = 3


def issuer(home: Path, *args: str, stdin: str | None = None) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-m", "sealcard.cli.main", "issuer", *args, "--home", str(home), "--json"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    payload: dict[str, object] = json.loads(result.stdout)
    return payload


def xpub_of(home: Path) -> str:
    issuer(home, "hsm", "start")
    try:
        return str(issuer(home, "hsm", "xpub")["xpub"])
    finally:
        issuer(home, "hsm", "stop")


def test_restore_from_threshold_shares_derives_the_same_keys(
    tmp_path: Path, service_dirs: Callable[[str], Path]
) -> None:
    if shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")
    homes = service_dirs("backup")  # the services that run on them reach these
    original = homes / "original"
    issuer(original, "init")
    issuer(original, "hsm", "init")
    shares_dir = tmp_path / "shares"
    backup = issuer(
        original,
        "hsm",
        "backup-seed",
        "--threshold",
        str(THRESHOLD),
        "--shares",
        str(SHARES),
        "--out-dir",
        str(shares_dir),
    )
    files = [Path(str(f)) for f in backup["files"]]  # type: ignore[attr-defined]
    assert len(files) == SHARES
    for file in files:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
    # Any THRESHOLD shares will do: take the last ones.
    chosen = "".join(f.read_text() for f in files[-THRESHOLD:])

    restored = homes / "restored"
    issuer(restored, "init")
    issuer(restored, "hsm", "init", "--restore", stdin=chosen)
    fresh = homes / "fresh"
    issuer(fresh, "init")
    issuer(fresh, "hsm", "init")

    original_xpub = xpub_of(original)
    assert xpub_of(restored) == original_xpub
    assert xpub_of(fresh) != original_xpub
    # the issuer key comes from the seed: the restored HSM signs as the cards expect
    assert issuer_key_of(restored) == issuer_key_of(original) != issuer_key_of(fresh)


def issuer_key_of(home: Path) -> bytes:
    certificate = x509.load_pem_x509_certificate((home / "hsm" / "issuer-cert.pem").read_bytes())
    return certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_backup_refuses_a_threshold_above_the_share_count(tmp_path: Path) -> None:
    home = tmp_path / "home"
    issuer(home, "init")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sealcard.cli.main",
            "issuer",
            "hsm",
            "backup-seed",
            "--threshold",
            "4",
            "--shares",
            "3",
            "--out-dir",
            str(tmp_path / "s"),
            "--home",
            str(home),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "--threshold cannot exceed --shares" in result.stderr
    assert not (tmp_path / "s").exists()
