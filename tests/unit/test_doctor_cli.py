"""`sealcard doctor` as a user runs it, on checks that need no service: pcscd unreachable, the
issuer home and its SQLite database (missing, behind or ahead of this code's schema), an
unreachable PostgreSQL, HSM not set up, the simulator jar; exit codes, JSON and text."""

from __future__ import annotations

import sqlite3
import tomllib
from pathlib import Path
from typing import Any

import tomli_w
from sealcard_cli import run_json, run_sealcard, sealcard_env

from sealcard import __version__
from sealcard.issuer.migrations import latest_version

NO_PCSCD = {"PCSCLITE_CSOCK_NAME": "/nonexistent/pcscd.comm"}


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{c['job']}/{c['name']}": c for c in report["checks"]}


def init_home(home: Path) -> None:
    run_json("issuer", "init", "--home", str(home))


def test_unreachable_pcscd_fails_with_a_fix_and_skips_the_rest(tmp_path: Path) -> None:
    report = run_json("doctor", "--for", "cards", expect=1, env=sealcard_env(**NO_PCSCD))
    assert report["ok"] is False and report["error"] == "CheckFailed"
    checks = by_name(report)
    assert checks["cards/pcscd"]["status"] == "fail"
    assert "/nonexistent/pcscd.comm" in checks["cards/pcscd"]["detail"]
    assert "pcscd" in checks["cards/pcscd"]["fix"]
    assert checks["cards/readers"]["status"] == "skip"
    assert report["failed"] == ["cards/pcscd"]


def test_text_report_names_the_failure_and_its_fix(tmp_path: Path) -> None:
    result = run_sealcard("doctor", "--for", "cards", env=sealcard_env(**NO_PCSCD))
    assert result.returncode == 1
    assert "FAIL  cards/pcscd" in result.stdout
    assert "fix: " in result.stdout
    assert "versions: sealcard" in result.stdout
    assert result.stderr.strip() == "error: 1 check(s) failed: cards/pcscd"


def test_versions_of_everything(tmp_path: Path) -> None:
    report = run_json("doctor", "--for", "cards", expect=1, env=sealcard_env(**NO_PCSCD))
    versions = report["versions"]
    assert versions["sealcard"] == __version__
    assert versions["python"].startswith("3.")
    for name in ("pyscard", "cryptography", "python-pkcs11", "pcscd", "softhsm2", "java"):
        assert name in versions
    assert versions["cryptography"] is not None


def test_missing_issuer_home(tmp_path: Path) -> None:
    home = tmp_path / "nowhere"
    report = run_json("doctor", "--for", "issuer", "--home", str(home), expect=1)
    checks = by_name(report)
    assert checks["issuer/issuer home"]["status"] == "fail"
    assert f"sealcard issuer init --home {home}" in checks["issuer/issuer home"]["fix"]
    assert checks["issuer/database"]["status"] == "skip"
    assert not home.exists()  # the doctor creates nothing


def test_issuer_home_without_hsm(tmp_path: Path) -> None:
    home = tmp_path / "home"
    init_home(home)
    report = run_json("doctor", "--for", "issuer", "--home", str(home), expect=1)
    checks = by_name(report)
    assert checks["issuer/issuer home"]["status"] == "ok"
    assert checks["issuer/database"]["status"] == "ok"
    assert "SQLite" in checks["issuer/database"]["detail"]
    assert checks["issuer/schema"]["status"] == "ok"
    assert checks["issuer/hsm settings"]["status"] == "fail"
    assert "sealcard issuer hsm init" in checks["issuer/hsm settings"]["fix"]
    assert report["failed"] == ["issuer/hsm settings"]


def _set_schema(database: Path, version: int) -> None:
    with sqlite3.connect(database) as conn:
        conn.execute("DELETE FROM schema_version")
        if version:
            conn.execute(
                "INSERT INTO schema_version (version, description, applied_at) "
                "VALUES (?, 'test', 'now')",
                (version,),
            )


def test_schema_behind_and_ahead(tmp_path: Path) -> None:
    home = tmp_path / "home"
    init_home(home)
    _set_schema(home / "issuer.db", 0)
    behind = by_name(run_json("doctor", "--for", "issuer", "--home", str(home), expect=1))
    assert behind["issuer/schema"]["status"] == "fail"
    assert f"needs {latest_version()}" in behind["issuer/schema"]["detail"]
    assert "sealcard issuer init" in behind["issuer/schema"]["fix"]

    _set_schema(home / "issuer.db", latest_version() + 1)
    ahead = by_name(run_json("doctor", "--for", "issuer", "--home", str(home), expect=1))
    assert ahead["issuer/schema"]["status"] == "fail"
    assert "upgrade sealcard" in ahead["issuer/schema"]["fix"]


def test_missing_sqlite_file_is_reported_not_created(tmp_path: Path) -> None:
    home = tmp_path / "home"
    init_home(home)
    for leftover in home.glob("issuer.db*"):
        leftover.unlink()
    checks = by_name(run_json("doctor", "--for", "issuer", "--home", str(home), expect=1))
    assert checks["issuer/database"]["status"] == "fail"
    assert checks["issuer/schema"]["status"] == "skip"
    assert not (home / "issuer.db").exists()


def test_unreachable_postgresql(tmp_path: Path) -> None:
    home = tmp_path / "home"
    init_home(home)
    config = tomllib.loads((home / "config.toml").read_text(encoding="utf-8"))
    config["issuer"]["database_url"] = f"postgresql:///sealcard?host={tmp_path / 'no-server'}"
    (home / "config.toml").write_text(tomli_w.dumps(config), encoding="utf-8")
    checks = by_name(run_json("doctor", "--for", "issuer", "--home", str(home), expect=1))
    assert checks["issuer/database"]["status"] == "fail"
    assert checks["issuer/schema"]["status"] == "skip"


def test_default_jobs_follow_the_issuer_home(tmp_path: Path) -> None:
    alone = run_json("doctor", expect=1, cwd=tmp_path, env=sealcard_env(**NO_PCSCD))
    assert alone["jobs"] == ["cards"]
    home = tmp_path / "home"
    init_home(home)
    env = sealcard_env(SEALCARD_ISSUER_HOME=str(home), **NO_PCSCD)
    both = run_json("doctor", expect=1, cwd=tmp_path, env=env)
    assert both["jobs"] == ["cards", "issuer"]


def test_sim_job_names_a_missing_jar(tmp_path: Path) -> None:
    env = sealcard_env(SEALCARD_SIM_JAR=str(tmp_path / "missing.jar"))
    checks = by_name(run_json("doctor", "--for", "sim", expect=1, env=env))
    assert checks["sim/simulator jar"]["status"] == "fail"
    assert "ant sim-jar" in checks["sim/simulator jar"]["fix"]


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    result = run_sealcard("doctor", "--for", "bank")
    assert result.returncode == 2
    assert "--for" in result.stderr
    assert run_sealcard("doctor", "--help").returncode == 0
