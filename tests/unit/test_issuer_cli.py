"""`sealcard issuer` commands that need no HSM: init, user add, order, pack, status (--json)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from sealcard.cli.main import cli
from sealcard.issuer.config import load_home
from sealcard.issuer.migrations import latest_version
from sealcard.issuer.records import Records


def run(home: Path, *args: str) -> dict[str, object]:
    result = CliRunner().invoke(cli, ["issuer", *args, "--home", str(home), "--json"])
    assert result.exit_code == 0, result.output
    payload: dict[str, object] = json.loads(result.output)
    assert payload["ok"] is True
    return payload


def _record_mailer(home: Path, mailer_id: str) -> None:
    records = Records.open(load_home(home).database_url, "test")
    with records.db:
        records.record_mailers([mailer_id])


def test_init_user_order_pack_status(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = run(home, "init")
    assert first["config_created"] is True
    assert first["migrations_applied"] == list(range(1, latest_version() + 1))
    again = run(home, "init")
    assert again["config_created"] is False and again["migrations_applied"] == []
    assert (home / "config.toml").stat().st_mode & 0o077 == 0
    assert (home / "secrets").stat().st_mode & 0o077 == 0

    user = run(home, "user", "add", "--name", "Ada Lovelace", "--address", "12 St James's Sq")
    user_id = user["user"]["id"]  # type: ignore[index]
    _record_mailer(home, "post")  # what `issuer hsm mailer add` does after the HSM took the key
    orders = run(home, "order", "--user", str(user_id), "--count", "3", "--mailer", "post")
    assert orders["orders"] == [1, 2, 3]
    pack = run(home, "pack", "import-fake", "--cards", "2", "--pack", "DEV-1", "--rsa-pool", "1")
    assert pack == {"ok": True, "pack": "DEV-1", "cards": 2, "source": "fake"}

    status = run(home, "status")
    assert status["users"] == 1
    assert status["orders"]["requested"] == 3  # type: ignore[index]
    assert status["packs"] == [
        {
            "pack_serial": "DEV-1",
            "imported_at": status["packs"][0]["imported_at"],  # type: ignore[index]
            "cards": 2,
            "available": 2,
        }
    ]


def test_errors_exit_nonzero(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["issuer", "status", "--home", str(tmp_path / "none")])
    assert result.exit_code != 0
    home = tmp_path / "home"
    run(home, "init")
    result = runner.invoke(cli, ["issuer", "order", "--user", "1", "--home", str(home)])
    assert result.exit_code != 0  # no such user, and no mailer for an HSM PIN
    result = runner.invoke(cli, ["issuer", "init", "--home", str(home), "--db", "mysql://x/y"])
    assert result.exit_code != 0


def test_init_help_teaches_the_database_urls(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["issuer", "init", "--help"])
    assert result.exit_code == 0
    assert "postgresql://" in result.output
