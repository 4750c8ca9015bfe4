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
from custody_pdf import pdf_text, share_words
from sealcard_cli import run_json, run_sealcard

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
        "--format",
        "text",
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


def test_pdf_custody_sheets_restore_the_seed(
    tmp_path: Path, service_dirs: Callable[[str], Path]
) -> None:
    """The default: one PDF sheet per custodian, 0600, nothing on screen; the words printed
    on any THRESHOLD sheets (read back with pdftotext) restore the same seed."""
    if shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")
    homes = service_dirs("sheets")  # the services that run on them reach these
    original = homes / "original"
    run_json("issuer", "init", "--home", str(original))
    run_json("issuer", "hsm", "init", "--home", str(original))
    shares_dir = tmp_path / "sheets"
    args = ["issuer", "hsm", "backup-seed", "--home", str(original), "--out-dir", str(shares_dir)]
    result = run_sealcard(*args, "--threshold", str(THRESHOLD), "--shares", str(SHARES))
    assert result.returncode == 0, result.stderr
    files = sorted(shares_dir.iterdir())
    assert [f.name for f in files] == [f"share-{n}-of-{SHARES}.pdf" for n in range(1, 4)]
    assert stat.S_IMODE(shares_dir.stat().st_mode) == 0o700
    texts = [pdf_text(f) for f in files]
    words = [share_words(t) for t in texts]
    for file, text, share in zip(files, texts, words, strict=True):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
        assert file.read_bytes().startswith(b"%PDF-")
        assert f"Any {THRESHOLD} of these {SHARES} shares" in text
        # Never on screen: not one run of three of its words in what the command printed.
        tokens = share.split()
        printed = result.stdout + result.stderr
        assert not any(" ".join(tokens[i : i + 3]) in printed for i in range(len(tokens) - 2))
    # The sheets name the issuer whose seed they hold.
    certificate = (original / "hsm" / "issuer-cert.pem").read_bytes()
    subject = x509.load_pem_x509_certificate(certificate).subject.rfc4514_string()
    assert all(subject in t for t in texts)

    restored = homes / "restored"
    run_json("issuer", "init", "--home", str(restored))
    chosen = "\n".join([words[0], words[2]]) + "\n"
    run_json("issuer", "hsm", "init", "--restore", "--home", str(restored), stdin=chosen)
    assert xpub_of(restored) == xpub_of(original)


def test_backup_into_an_existing_folder_is_refused_before_the_token(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run_json("issuer", "init", "--home", str(home))
    existing = tmp_path / "existing"
    existing.mkdir()
    result = run_sealcard(
        "issuer", "hsm", "backup-seed", "--home", str(home), "--out-dir", str(existing),
        "--threshold", "2", "--shares", "3",
    )  # fmt: skip
    assert result.returncode == 2
    assert "exists" in result.stderr
    assert list(existing.iterdir()) == []
