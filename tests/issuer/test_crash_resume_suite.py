"""Issue 11, suite 6 at CI size: `tools/crash_resume.py` SIGKILLs real sealing runs (the CLI,
SoftHSM2, the issuer HSM service) at random points on SQLite and PostgreSQL and checks that no
order is lost or sealed twice, no derivation element is used twice, the database's own
integrity checks pass and the audit log's hash chain verifies. Full size (10,000 cards, 20
kills each): `python tools/crash_resume.py`, counts in docs/assurance.md."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.issuer

SUITE = Path(__file__).resolve().parents[2] / "tools" / "crash_resume.py"
CARDS = 300
KILLS = 5


def test_crash_and_resume_suite_at_ci_size() -> None:
    if shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")
    if not os.environ.get("SEALCARD_TEST_PG_URL"):
        pytest.skip("no PostgreSQL: set SEALCARD_TEST_PG_URL (tools/pg_test_server.sh start DIR)")
    result = subprocess.run(
        [
            sys.executable,
            str(SUITE),
            "--cards",
            str(CARDS),
            "--kills",
            str(KILLS),
            "--chunk",
            "8",
            "--jitter",
            "0.05",
            "--service-kill-every",
            "3",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["failure"] is None
    assert [r["database"] for r in report["runs"]] == ["sqlite", "postgresql"]
    for run in report["runs"]:
        assert run["kills"] == KILLS
        assert run["sealer_kills"] >= 1 and run["service_kills"] >= 1
        assert run["sealed"] == run["blobs_verified"] == CARDS
        assert run["blobs_opened"] > 0
        assert run["integrity_checks"]
        # every card was assigned and sealed once, each step in the chained audit log
        assert run["audit_entries"] >= 2 * CARDS
    sqlite, postgres = report["runs"]
    assert "PRAGMA integrity_check: ok" in sqlite["integrity_checks"]
    assert any("bt_index_check" in check for check in postgres["integrity_checks"])
