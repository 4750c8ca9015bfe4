"""The issuer home: one folder with the issuer system's configuration, database and HSM state.

    HOME/config.toml      [issuer] database_url, derivation_base, actor; the HSM helper's
                          [issuer_hsm] and [system_hsm] sections live in the same file
    HOME/issuer.db        the records (SQLite default; PostgreSQL when database_url says so)
    HOME/hsm/             SoftHSM2 tokens and configuration (sealcard issuer hsm init)
    HOME/secrets/         token PINs (0600 files; never printed)
    HOME/run/             the issuer HSM service's socket

The home is $SEALCARD_ISSUER_HOME, else ./issuer-home, unless a command names one (--home).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from sealcard.errors import ConfigurationError
from sealcard.files import prepare_dir
from sealcard.issuer.db import DatabaseUrl
from sealcard.issuer.records import DEFAULT_DERIVATION_BASE, validate_base_path

HOME_ENV = "SEALCARD_ISSUER_HOME"
DEFAULT_HOME = Path("issuer-home")
CONFIG_NAME = "config.toml"
SECTION = "issuer"
_PRIVATE_DIR_MODE = 0o700


def default_home() -> Path:
    """$SEALCARD_ISSUER_HOME, else ./issuer-home."""
    env = os.environ.get(HOME_ENV)
    return Path(env) if env else DEFAULT_HOME


def render_section(name: str, values: Mapping[str, str | int | bool]) -> str:
    """A TOML table with these values, written by tomli-w (quotes, backslashes, control characters
    and non-ASCII come back as they went in)."""
    return tomli_w.dumps({name: dict(values)})


@dataclass(frozen=True)
class IssuerHome:
    """Paths and settings of one issuer home."""

    root: Path
    database_url: str
    derivation_base: str
    actor: str | None

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def hsm_dir(self) -> Path:
        return self.root / "hsm"

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def socket_path(self) -> Path:
        """Where the issuer HSM service listens."""
        return self.run_dir / "issuer-hsm.sock"

    def raw_config(self) -> dict[str, Any]:
        """Every section of config.toml (for the HSM layer's settings)."""
        return read_config(self.config_path)

    def default_actor(self) -> str:
        """Who acts, for the audit log: config `actor`, else $SEALCARD_ACTOR, else the login."""
        if self.actor:
            return self.actor
        env = os.environ.get("SEALCARD_ACTOR")
        if env:
            return env
        try:
            return os.getlogin()
        except OSError:
            import getpass

            return getpass.getuser()


def read_config(path: Path) -> dict[str, Any]:
    """Parse a config.toml."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigurationError(
            f"no issuer home at {path.parent} (missing {CONFIG_NAME}): run `sealcard issuer init`"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: not valid TOML: {exc}") from exc


def load_home(root: Path | None = None) -> IssuerHome:
    """Read an issuer home's settings."""
    root = (root or default_home()).expanduser()
    config = read_config(root / CONFIG_NAME)
    section = config.get(SECTION)
    if not isinstance(section, dict):
        raise ConfigurationError(f"{root / CONFIG_NAME}: no [{SECTION}] section")
    url = section.get("database_url")
    if not isinstance(url, str) or not url:
        raise ConfigurationError(f"{root / CONFIG_NAME}: [{SECTION}] database_url is missing")
    url = _resolve_sqlite(url, root)
    base = str(section.get("derivation_base", DEFAULT_DERIVATION_BASE))
    actor = section.get("actor")
    return IssuerHome(root, url, base, None if actor is None else str(actor))


def _resolve_sqlite(url: str, root: Path) -> str:
    """A relative SQLite path in config.toml is relative to the home."""
    parsed = DatabaseUrl.parse(url)
    if parsed.dialect.value == "sqlite" and parsed.target != ":memory:":
        path = Path(parsed.target)
        if not path.is_absolute():
            return f"sqlite:///{(root / path).resolve()}"
    return url


def init_home(
    root: Path | None = None,
    database_url: str | None = None,
    derivation_base: str = DEFAULT_DERIVATION_BASE,
) -> tuple[IssuerHome, bool]:
    """Create the home's folders and config.toml (kept if present). Returns (home, created)."""
    root = (root or default_home()).expanduser()
    validate_base_path(derivation_base)
    if database_url is not None:
        DatabaseUrl.parse(database_url)  # refuse a bad URL before writing anything
    prepare_dir(
        root,
        what="the issuer home",
        fix=f"choose a folder you can write with --home (or ${HOME_ENV})",
        mode=_PRIVATE_DIR_MODE,
    )
    for sub in ("hsm", "secrets", "run"):
        (root / sub).mkdir(mode=_PRIVATE_DIR_MODE, exist_ok=True)
    os.chmod(root / "secrets", _PRIVATE_DIR_MODE)
    config_path = root / CONFIG_NAME
    created = False
    if not config_path.exists():
        values: dict[str, str | int | bool] = {
            "database_url": database_url or "sqlite:///issuer.db",
            "derivation_base": derivation_base,
        }
        header = "# sealcard issuer home (written by `sealcard issuer init`)\n"
        config_path.write_text(header + render_section(SECTION, values), encoding="utf-8")
        os.chmod(config_path, 0o600)
        created = True
    home = load_home(root)
    if database_url is not None and _resolve_sqlite(database_url, root) != home.database_url:
        raise ConfigurationError(
            f"{config_path} already names another database; edit it to change databases"
        )
    return home, created
