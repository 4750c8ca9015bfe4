"""The `issuer` job: issuer home, database and schema, PKCS#11 module and tokens, HSM service.

Nothing here writes: the database is read in a read-only transaction, tokens are listed
without logging in, and only the issuer-system token is opened (as every issuer command does)
to sign one `ping` to the issuer HSM service.
"""

from __future__ import annotations

import pwd
import stat
from pathlib import Path
from typing import Final

from sealcard.doctor.model import Check, Job, Status
from sealcard.errors import ConfigurationError, SealcardError
from sealcard.hsm.config import HsmConfig, IssuerHsmSettings, load_settings
from sealcard.hsm.errors import BadResponseError, HsmError, RequestRefused
from sealcard.hsm.inventory import ModuleInfo, module_inventory
from sealcard.issuer.config import IssuerHome, default_home, load_home
from sealcard.issuer.db import Database, DatabaseUrl, Dialect, redact_url
from sealcard.issuer.migrations import applied_version, latest_version

SERVICE_TIMEOUT_S: Final = 10.0
SERVICE_UNIT: Final = "sealcard-issuer-hsm.service"
_GROUP: Final = stat.S_IRWXG


def _check(name: str, status: Status, detail: str, fix: str | None = None) -> Check:
    return Check(Job.ISSUER, name, status, detail, fix)


def _skipped(names: list[str], why: str) -> list[Check]:
    return [_check(name, Status.SKIP, why) for name in names]


def issuer_home_present(root: Path | None) -> bool:
    """Whether an issuer home is configured here (the default job list includes `issuer` then)."""
    return ((root or default_home()).expanduser() / "config.toml").is_file()


def _service_gid(home: IssuerHome) -> int | None:
    """The group of the issuer HSM service's own user: `issuer hsm init` or the service's
    start as root give it search (folders) or read (config.toml) access (docs/hsm.md)."""
    try:
        user = load_settings(home.root, home.raw_config()).service_user
        return pwd.getpwnam(user).pw_gid
    except (ConfigurationError, KeyError):
        return None


def _open_to_others(path: Path, service_gid: int | None) -> bool:
    """Open to others at all, writable by group, or open to a group other than the service's."""
    info = path.stat()
    if info.st_mode & (stat.S_IRWXO | stat.S_IWGRP):
        return True
    return bool(info.st_mode & _GROUP) and info.st_gid != service_gid


def _home_check(root: Path) -> tuple[Check, IssuerHome | None]:
    init = f"sealcard issuer init --home {root}"
    try:
        home = load_home(root)
    except ConfigurationError as exc:
        return _check("issuer home", Status.FAIL, str(exc), f"create it: {init}"), None
    service_gid = _service_gid(home)
    loose = [
        str(path)
        for path in (home.root, home.secrets_dir, home.config_path)
        if path.exists() and _open_to_others(path, service_gid)
    ]
    if loose:
        return _check(
            "issuer home",
            Status.WARN,
            f"{home.root}: open to group or others: {', '.join(loose)}",
            f"chmod go-w,o= {' '.join(loose)} (a group may read only if it is the issuer HSM"
            " service user's)",
        ), home
    return _check("issuer home", Status.OK, f"{home.root} (config.toml closed to others)"), home


def _database_checks(home: IssuerHome) -> list[Check]:
    url = home.database_url
    shown = redact_url(url)
    parsed = DatabaseUrl.parse(url)
    sqlite_file = parsed.dialect is Dialect.SQLITE and parsed.target != ":memory:"
    if sqlite_file and not Path(parsed.target).is_file():  # opening it would create it
        return [
            _check(
                "database",
                Status.FAIL,
                f"no SQLite database at {parsed.target}",
                f"create it: sealcard issuer init --home {home.root}",
            ),
            *_skipped(["schema"], "no database"),
        ]
    try:
        with Database(url) as db:
            engine = db.server_version()
            have = applied_version(db)
    except SealcardError as exc:
        fix = (
            "install the PostgreSQL driver: pip install 'sealcard[postgres]'"
            if "psycopg" in str(exc)
            else f"is the database server running and {shown} right? (database_url in "
            f"{home.config_path}; a password belongs in ~/.pgpass or PGPASSWORD)"
        )
        failed = _check("database", Status.FAIL, str(exc), fix)
        return [failed, *_skipped(["schema"], "no database")]
    checks = [_check("database", Status.OK, f"{shown} ({engine})")]
    want = latest_version()
    if have == want:
        checks.append(_check("schema", Status.OK, f"version {have} (current)"))
    elif have < want:
        checks.append(
            _check(
                "schema",
                Status.FAIL,
                f"version {have}, this sealcard needs {want}",
                f"apply the migrations: sealcard issuer init --home {home.root}",
            )
        )
    else:
        checks.append(
            _check(
                "schema",
                Status.FAIL,
                f"version {have} is newer than this sealcard knows ({want})",
                "upgrade sealcard on this machine",
            )
        )
    return checks


def _module_check(
    cfg: HsmConfig, role: str, modules: dict[str, ModuleInfo]
) -> tuple[Check, ModuleInfo | None]:
    name = f"pkcs11 module ({role})"
    if cfg.softhsm_conf is not None and not cfg.softhsm_conf.is_file():
        return _check(
            name,
            Status.FAIL,
            f"SoftHSM configuration {cfg.softhsm_conf} is missing",
            "restore it from backup, or set softhsm_conf in config.toml",
        ), None
    try:
        info = module_inventory(cfg.module_path, cfg.softhsm_conf)
    except HsmError as exc:
        return _check(
            name,
            Status.FAIL,
            str(exc),
            "install the module (SoftHSM2: apt-get install softhsm2) or set `module` in "
            "config.toml to your HSM vendor's PKCS#11 library",
        ), None
    modules[cfg.module_path] = info
    labels = [t.label for t in info.tokens if t.initialized] or ["no initialized token"]
    detail = (
        f"{info.path}: {info.manufacturer} {info.description} {info.library_version}; "
        f"tokens: {', '.join(labels)}"
    )
    return _check(name, Status.OK, detail), info


def _token_check(cfg: HsmConfig, role: str, info: ModuleInfo) -> Check:
    name = f"token ({role})"
    token = info.token(cfg.token_label)
    if token is None:
        return _check(
            name,
            Status.FAIL,
            f"no initialized token labelled {cfg.token_label!r} behind {info.path}",
            "sealcard issuer hsm init (SoftHSM2), or create the token with your HSM's tools and "
            "put its label in config.toml",
        )
    if token.user_pin_locked:
        return _check(
            name,
            Status.FAIL,
            f"{cfg.token_label!r}: the user PIN is locked",
            "the token's security officer must unlock or reset the user PIN",
        )
    try:
        cfg.read_pin()  # present, not empty, 0600; the value is dropped at once
    except ConfigurationError as exc:
        return _check(
            name,
            Status.FAIL,
            f"{cfg.token_label!r}: {exc}",
            "put the user PIN in the pin_file named in config.toml (mode 0600) or in the "
            "environment variable named by pin_env",
        )
    if token.user_pin_low:
        return _check(
            name,
            Status.WARN,
            f"{cfg.token_label!r}: a wrong user PIN was given recently (few tries left)",
            "check the PIN source before the token locks",
        )
    where = f"${cfg.pin_env}" if cfg.pin_env else str(cfg.pin_file)
    return _check(name, Status.OK, f"{cfg.token_label!r} ({token.model}), PIN from {where}")


def _service_check(home: IssuerHome, settings: IssuerHsmSettings) -> Check:
    from sealcard.hsm.issuer_client import IssuerHsmClient
    from sealcard.hsm.system_hsm import RequestSigner
    from sealcard.hsm.token import Token

    socket = settings.socket_path
    start = (
        f"systemctl start {SERVICE_UNIT} (docs/operations.md), or for a trial: "
        f"sealcard issuer hsm start --home {home.root}"
    )
    if not socket.exists():
        return _check("hsm service", Status.FAIL, f"not running: no socket at {socket}", start)
    try:
        token = Token.open(settings.system, pool_size=1)
    except SealcardError as exc:
        return _check(
            "hsm service",
            Status.FAIL,
            f"cannot open the issuer-system token to sign a ping: {exc}",
            "check the issuer-system token's PIN source in config.toml",
        )
    try:
        client = IssuerHsmClient.for_settings(
            settings, RequestSigner(token), timeout_s=SERVICE_TIMEOUT_S
        )
        with client:
            client.ping()
    except RequestRefused as exc:
        return _check(
            "hsm service",
            Status.FAIL,
            f"refused a signed ping: {exc}",
            f"the service does not trust this request key ({settings.request_public_key}); "
            "was `issuer hsm init` run again since it started? restart it",
        )
    except BadResponseError as exc:
        return _check(
            "hsm service",
            Status.FAIL,
            f"answers, but not as the issuer key of {settings.issuer_certificate}: {exc}",
            f"another service listens on {socket}: stop it, then {start}",
        )
    except SealcardError as exc:
        return _check("hsm service", Status.FAIL, str(exc), start)
    finally:
        token.close()
    return _check(
        "hsm service",
        Status.OK,
        f"answers a signed ping on {socket}; replies signed by the issuer key of "
        f"{settings.issuer_certificate}",
    )


def check_issuer(root: Path | None) -> list[Check]:
    """Every check of the issuer job, in the order a person fixes them."""
    root = (root or default_home()).expanduser()
    hsm_names = ["pkcs11 module (issuer)", "token (issuer)", "token (system)", "hsm service"]
    home_check, home = _home_check(root)
    if home is None:
        return [home_check, *_skipped(["database", "schema", *hsm_names], "no issuer home")]
    checks = [home_check, *_database_checks(home)]
    try:
        settings = load_settings(home.root, home.raw_config())
    except ConfigurationError as exc:
        checks.append(
            _check(
                "hsm settings",
                Status.FAIL,
                str(exc),
                f"set up the HSMs: sealcard issuer hsm init --home {home.root}",
            )
        )
        return checks + _skipped(hsm_names, "no HSM settings")
    modules: dict[str, ModuleInfo] = {}
    tokens_ok = True
    for role, cfg in (("issuer", settings.issuer), ("system", settings.system)):
        if cfg.module_path in modules:  # both tokens behind one module: checked once
            info: ModuleInfo | None = modules[cfg.module_path]
        else:
            module_check, info = _module_check(cfg, role, modules)
            checks.append(module_check)
        token_check = (
            _token_check(cfg, role, info)
            if info is not None
            else _check(f"token ({role})", Status.SKIP, "no PKCS#11 module")
        )
        checks.append(token_check)
        tokens_ok = tokens_ok and token_check.status in (Status.OK, Status.WARN)
    if tokens_ok:
        checks.append(_service_check(home, settings))
    else:
        checks.append(_check("hsm service", Status.SKIP, "a token is missing"))
    return checks
