"""`sealcard issuer audit` as a user meets it: the installed executable, SoftHSM2 signing the
checkpoints, exit codes, the one-line error and --json, on a SQLite home."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.issuer


def sealcard(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("sealcard")
    command = [exe] if exe else [sys.executable, "-m", "sealcard.cli.main"]
    return subprocess.run(
        [*command, "issuer", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def ok(home: Path, *args: str) -> dict[str, object]:
    result = sealcard(home, *args, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    payload: dict[str, object] = json.loads(result.stdout)
    return payload


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")
    root = tmp_path_factory.mktemp("audit") / "home"
    ok(root, "init")
    ok(root, "hsm", "init")
    for name in ("Ada", "Grace", "Hedy"):
        ok(root, "user", "add", "--name", name, "--address", "1 Main St")
    return root


def test_checkpoint_verify_export(home: Path, tmp_path: Path) -> None:
    assert (home / "hsm" / "audit-key.pem").exists()  # written by hsm init
    signed = ok(home, "audit", "checkpoint")
    assert signed["signed"] is True and signed["seq"] == 4
    assert ok(home, "audit", "checkpoint")["signed"] is False
    ok(home, "user", "add", "--name", "Katherine", "--address", "2 Main St")
    result = sealcard(home, "audit", "verify")
    assert result.returncode == 0, result.stderr
    assert "intact: 5 entries, 1 checkpoint(s), last at entry 4" in result.stdout
    assert "1 entries after the last checkpoint" in result.stdout
    export = tmp_path / "log.jsonl"
    assert ok(home, "audit", "export", "--out", str(export))["entries"] == 5
    again = sealcard(home, "audit", "export", "--out", str(export))
    assert again.returncode == 2 and "exists" in again.stderr  # an output in the way: usage
    offline = ok(
        home, "audit", "verify", "--file", str(export), "--key", str(home / "hsm" / "audit-key.pem")
    )
    assert offline["intact"] is True and offline["entries"] == 5


def test_tampered_database_exits_1_with_one_line(home: Path) -> None:
    ok(home, "audit", "checkpoint")
    db = sqlite3.connect(home / "issuer.db")
    db.executescript(
        """
        DROP TRIGGER audit_log_no_update;
        UPDATE audit_log SET actor = 'mallory' WHERE seq = 3;
        CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
        """
    )
    db.close()
    result = sealcard(home, "audit", "verify")
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: audit log (database): entry 3 ")
    as_json = sealcard(home, "audit", "verify", "--json")
    assert as_json.returncode == 1
    payload = json.loads(as_json.stdout)
    assert payload["ok"] is False and payload["first_bad_seq"] == 3
    assert payload["error"] == "AuditLogTampered"


def test_wrong_key_and_missing_file(home: Path, tmp_path: Path) -> None:
    missing = sealcard(home, "audit", "verify", "--file", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    not_pem = tmp_path / "key.pem"
    not_pem.write_text("hello")
    bad_key = sealcard(home, "audit", "verify", "--key", str(not_pem))
    assert bad_key.returncode == 2 and "PEM" in bad_key.stderr
    usage = sealcard(home, "audit", "verify", "--bogus")
    assert usage.returncode == 2
