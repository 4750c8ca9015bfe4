"""Where the HSMs are and how to log in: ``[issuer_hsm]`` and ``[system_hsm]`` of config.toml.

Any PKCS#11 module works by configuration (module path, token label). The user PIN comes
from an environment variable (``pin_env``) or a 0600 file (``pin_file``), never argv or a log.
Both sections may name the same token (one HSM for both roles).

    [issuer_hsm]
    module = "/usr/lib/softhsm/libsofthsm2.so"
    token_label = "sealcard-issuer"
    pin_file = "secrets/sealcard-issuer.user-pin"     # or pin_env = "SEALCARD_ISSUER_HSM_PIN"
    softhsm_conf = "hsm/softhsm2.conf"                # SoftHSM only
    socket = "run/issuer-hsm.sock"
    request_public_key = "hsm/request-key.pem"        # the issuer system's request key
    issuer_certificate = "hsm/issuer-cert.pem"        # self-signed, for the CMS PIN letters
    derivation = "in-process"                         # or "pkcs11-vendor" (see docs/hsm.md)
    max_request_age_s = 120
    service_user = "sealcard-hsm"                     # the service's own Unix user
    # workers = 2                                     # processes; default one per core
    # socket_group = "sealcard"                       # socket 0660 for this group

    [system_hsm]
    module = "/usr/lib/softhsm/libsofthsm2.so"
    token_label = "sealcard-system"
    pin_file = "secrets/sealcard-system.user-pin"
    softhsm_conf = "hsm/softhsm2.conf"

Relative paths are relative to the issuer home.
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from sealcard.errors import ConfigurationError

CONFIG_NAME = "config.toml"
ISSUER_SECTION = "issuer_hsm"
SYSTEM_SECTION = "system_hsm"
DERIVATION_IN_PROCESS = "in-process"
DERIVATION_PKCS11_VENDOR = "pkcs11-vendor"
DERIVATIONS = (DERIVATION_IN_PROCESS, DERIVATION_PKCS11_VENDOR)
DEFAULT_MAX_REQUEST_AGE_S = 120.0
DEFAULT_SERVICE_USER = "sealcard-hsm"
MAX_WORKERS = 64


def default_workers() -> int:
    """One issuer HSM worker process per core (docs/performance.md)."""
    return max(1, min(os.cpu_count() or 1, MAX_WORKERS))


SOFTHSM_MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/usr/lib64/softhsm/libsofthsm2.so",
)


def default_softhsm_module() -> str:
    """$SEALCARD_PKCS11_MODULE, else the first SoftHSM2 library found."""
    env = os.environ.get("SEALCARD_PKCS11_MODULE")
    if env:
        return env
    for candidate in SOFTHSM_MODULE_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    raise ConfigurationError("SoftHSM2 not found: install softhsm2 or set SEALCARD_PKCS11_MODULE")


@dataclass(frozen=True)
class HsmConfig:
    """One PKCS#11 token: module, label, where its user PIN is."""

    module_path: str
    token_label: str
    pin_env: str | None = None
    pin_file: Path | None = None
    softhsm_conf: Path | None = None

    def read_pin(self) -> str:
        """The user PIN: from ``pin_env`` if set and present, else from ``pin_file``."""
        if self.pin_env:
            value = os.environ.get(self.pin_env)
            if value:
                return value
        if self.pin_file is not None:
            try:
                mode = self.pin_file.stat().st_mode
                text = self.pin_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot read the PIN file {self.pin_file}: {exc.strerror}"
                ) from None
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ConfigurationError(f"PIN file {self.pin_file} must be mode 0600")
            if not text:
                raise ConfigurationError(f"PIN file {self.pin_file} is empty")
            return text
        where = f"${self.pin_env}" if self.pin_env else "no pin_env/pin_file"
        raise ConfigurationError(f"no PIN for token {self.token_label!r} ({where})")


@dataclass(frozen=True)
class IssuerHsmSettings:
    """Both HSM roles and the issuer HSM service's own settings."""

    issuer: HsmConfig
    system: HsmConfig
    socket_path: Path
    request_public_key: Path
    issuer_certificate: Path
    derivation: str = DERIVATION_IN_PROCESS
    max_request_age_s: float = DEFAULT_MAX_REQUEST_AGE_S
    workers: int = 0  # worker processes of the service; 0: one per core
    service_user: str = DEFAULT_SERVICE_USER  # the service's own Unix user
    socket_group: str | None = None  # a group that may connect (socket 0660), else 0600

    def __post_init__(self) -> None:
        if self.workers == 0:
            object.__setattr__(self, "workers", default_workers())


def _path(home: Path, value: Any, key: str, section: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"[{section}] {key} must be a path")
    path = Path(value).expanduser()
    return path if path.is_absolute() else home / path


def _optional_path(home: Path, section: dict[str, Any], key: str, name: str) -> Path | None:
    value = section.get(key)
    return None if value is None else _path(home, value, key, name)


def _hsm_config(home: Path, section: dict[str, Any], name: str) -> HsmConfig:
    module = section.get("module")
    label = section.get("token_label")
    if not isinstance(label, str) or not label:
        raise ConfigurationError(f"[{name}] token_label is missing")
    pin_env = section.get("pin_env")
    if pin_env is not None and not isinstance(pin_env, str):
        raise ConfigurationError(f"[{name}] pin_env must be a string")
    return HsmConfig(
        module_path=str(module) if module else default_softhsm_module(),
        token_label=label,
        pin_env=pin_env,
        pin_file=_optional_path(home, section, "pin_file", name),
        softhsm_conf=_optional_path(home, section, "softhsm_conf", name),
    )


def load_settings(home: Path, config: dict[str, Any] | None = None) -> IssuerHsmSettings:
    """Read ``[issuer_hsm]`` and ``[system_hsm]`` from HOME/config.toml (or a parsed dict)."""
    if config is None:
        path = home / CONFIG_NAME
        try:
            with path.open("rb") as f:
                config = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigurationError(f"no {path}: run `sealcard issuer init`") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{path}: not valid TOML: {exc}") from None
    issuer = config.get(ISSUER_SECTION)
    system = config.get(SYSTEM_SECTION, issuer)
    if not isinstance(issuer, dict) or not isinstance(system, dict):
        raise ConfigurationError(
            f"no [{ISSUER_SECTION}] section in {home / CONFIG_NAME}: run `sealcard issuer hsm init`"
        )
    derivation = str(issuer.get("derivation", DERIVATION_IN_PROCESS))
    if derivation not in DERIVATIONS:
        raise ConfigurationError(f"[{ISSUER_SECTION}] derivation must be one of {DERIVATIONS}")
    # `threads` (threads of one service process) was replaced by `workers` (processes)
    workers = int(issuer.get("workers", 0))
    if not 0 <= workers <= MAX_WORKERS:
        raise ConfigurationError(f"[{ISSUER_SECTION}] workers must be 1..{MAX_WORKERS}")
    service_user = issuer.get("service_user", DEFAULT_SERVICE_USER)
    socket_group = issuer.get("socket_group")
    if not isinstance(service_user, str) or not service_user:
        raise ConfigurationError(f"[{ISSUER_SECTION}] service_user must be a Unix user name")
    if socket_group is not None and (not isinstance(socket_group, str) or not socket_group):
        raise ConfigurationError(f"[{ISSUER_SECTION}] socket_group must be a Unix group name")
    return IssuerHsmSettings(
        issuer=_hsm_config(home, issuer, ISSUER_SECTION),
        system=_hsm_config(home, system, SYSTEM_SECTION),
        socket_path=_path(
            home, issuer.get("socket", "run/issuer-hsm.sock"), "socket", ISSUER_SECTION
        ),
        request_public_key=_path(
            home,
            issuer.get("request_public_key", "hsm/request-key.pem"),
            "request_public_key",
            ISSUER_SECTION,
        ),
        issuer_certificate=_path(
            home,
            issuer.get("issuer_certificate", "hsm/issuer-cert.pem"),
            "issuer_certificate",
            ISSUER_SECTION,
        ),
        derivation=derivation,
        max_request_age_s=float(issuer.get("max_request_age_s", DEFAULT_MAX_REQUEST_AGE_S)),
        workers=workers,
        service_user=service_user,
        socket_group=socket_group,
    )


_Scalar = str | float | int  # what a config.toml value of ours is


def _relative(home: Path, path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return str(path.relative_to(home))
    except ValueError:
        return str(path)


def render_settings(home: Path, settings: IssuerHsmSettings) -> str:
    """The two TOML sections for these settings (paths relative to ``home`` where possible),
    written by tomli-w so that any label, path or variable name reads back unchanged."""

    def section(cfg: HsmConfig, extra: dict[str, _Scalar]) -> dict[str, _Scalar]:
        values: dict[str, _Scalar | None] = {
            "module": cfg.module_path,
            "token_label": cfg.token_label,
            "pin_env": cfg.pin_env,
            "pin_file": _relative(home, cfg.pin_file),
            "softhsm_conf": _relative(home, cfg.softhsm_conf),
            **extra,
        }
        return {key: value for key, value in values.items() if value is not None}

    issuer_extra: dict[str, _Scalar] = {
        "socket": _relative(home, settings.socket_path) or "",
        "request_public_key": _relative(home, settings.request_public_key) or "",
        "issuer_certificate": _relative(home, settings.issuer_certificate) or "",
        "derivation": settings.derivation,
        "max_request_age_s": settings.max_request_age_s,
        "service_user": settings.service_user,
        **({"socket_group": settings.socket_group} if settings.socket_group else {}),
        # one per core unless set otherwise: left out, so the home follows the machine's cores
        **({"workers": settings.workers} if settings.workers != default_workers() else {}),
    }
    return tomli_w.dumps(
        {
            ISSUER_SECTION: section(settings.issuer, issuer_extra),
            SYSTEM_SECTION: section(settings.system, {}),
        }
    )


def save_settings(home: Path, settings: IssuerHsmSettings) -> Path:
    """Append the two sections to HOME/config.toml (refused if either is already there)."""
    path = home / CONFIG_NAME
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    if existing:
        parsed = tomllib.loads(existing)
        if ISSUER_SECTION in parsed or SYSTEM_SECTION in parsed:
            raise ConfigurationError(f"{path} already has HSM sections; the HSMs are set up")
    separator = "" if not existing or existing.endswith("\n\n") else "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(separator + render_settings(home, settings))
    return path
