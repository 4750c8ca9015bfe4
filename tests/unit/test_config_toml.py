"""config.toml is written with tomli-w: values that need escaping read back unchanged."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest

from sealcard.errors import ConfigurationError
from sealcard.hsm.config import (
    ISSUER_SECTION,
    SYSTEM_SECTION,
    HsmConfig,
    IssuerHsmSettings,
    default_workers,
    load_settings,
    render_settings,
    save_settings,
)
from sealcard.issuer.config import init_home, load_home, render_section

# Every character class a hand-written TOML writer gets wrong: quote, backslash, newline, tab,
# another control character, a TOML comment sign, a table bracket and non-ASCII.
AWKWARD = 'a "quoted" \\path\\ with\nnewline\tand \x01 # not [a table] é'


def test_render_section_round_trips_awkward_values() -> None:
    values: dict[str, str | int | bool] = {"text": AWKWARD, "number": 7, "flag": False}
    assert tomllib.loads(render_section("issuer", values)) == {"issuer": values}


def test_issuer_home_database_path_with_awkward_characters(tmp_path: Path) -> None:
    home_dir = tmp_path / "home"
    database = tmp_path / "odd dir" / 'issuer "main"\\\nfile é.db'
    home, created = init_home(home_dir, database_url=f"sqlite:///{database}")
    assert created
    assert load_home(home_dir).database_url == f"sqlite:///{database}" == home.database_url
    assert stat.S_IMODE(home.config_path.stat().st_mode) == 0o600


def _settings(home: Path) -> IssuerHsmSettings:
    token = HsmConfig(
        module_path=f"/opt/vendor {AWKWARD}/libpkcs11.so",
        token_label=AWKWARD,
        pin_env="ISSUER_PIN",
        pin_file=home / "secrets" / 'pin "one"',
        softhsm_conf=Path("/elsewhere") / "soft\\hsm2.conf",
    )
    system = HsmConfig(module_path="/usr/lib/x.so", token_label="system\ttoken", pin_env=None)
    return IssuerHsmSettings(
        issuer=token,
        system=system,
        socket_path=home / "run" / "sock\n1",
        request_public_key=home / "hsm" / "request key.pem",
        issuer_certificate=Path("/etc/sealcard") / 'issuer "cert".pem',
        derivation="pkcs11-vendor",
        max_request_age_s=90.5,
        workers=default_workers() + 1,
        service_user="hsm service",
        socket_group="issuer system",
    )


def test_hsm_settings_round_trip_through_config_toml(tmp_path: Path) -> None:
    home, _ = init_home(tmp_path / "home")
    settings = _settings(home.root)
    save_settings(home.root, settings)
    assert load_settings(home.root) == settings
    parsed = tomllib.loads(home.config_path.read_text(encoding="utf-8"))
    assert {"issuer", ISSUER_SECTION, SYSTEM_SECTION} <= parsed.keys()
    # Paths inside the home are written relative to it.
    assert parsed[ISSUER_SECTION]["request_public_key"] == "hsm/request key.pem"


def test_rendered_hsm_sections_parse_alone(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    parsed = tomllib.loads(render_settings(tmp_path, settings))
    assert parsed[ISSUER_SECTION]["token_label"] == AWKWARD
    assert parsed[SYSTEM_SECTION]["token_label"] == "system\ttoken"
    assert "pin_env" not in parsed[SYSTEM_SECTION]  # None is left out, not written as ""


def test_hsm_sections_are_written_once(tmp_path: Path) -> None:
    home, _ = init_home(tmp_path / "home")
    save_settings(home.root, _settings(home.root))
    with pytest.raises(ConfigurationError, match="already has HSM sections"):
        save_settings(home.root, _settings(home.root))
