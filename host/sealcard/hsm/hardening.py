"""Process hardening of the issuer HSM service (issue 11): the service is the HSM's trusted
part where the token cannot derive BIP32 keys, so it is built like one.

- **Its own Unix user.** It never runs as root and never as a user other than
  ``[issuer_hsm] service_user`` (default ``sealcard-hsm``). Started as root (``sealcard issuer
  hsm start|serve`` under root, or a service manager), it hands its files to that user
  (:func:`grant_service_access`), then drops to it (:func:`become_service_user`) keeping one
  capability, CAP_IPC_LOCK, so that it can lock its memory.
- **Memory locked, no core dumps, no ptrace** (:func:`lock_down_process`): ``mlockall``
  (current and future pages: nothing of it reaches swap), ``PR_SET_DUMPABLE`` 0 (no core file,
  and a process of the same user cannot ptrace it or read ``/proc/PID/mem``), RLIMIT_CORE 0.
- **Nothing it trusts may be writable by others** (:func:`check_permissions`): the home, its
  config, the request key that authenticates every request, the issuer certificate, the
  SoftHSM configuration and token, the PIN file, and the folder of its socket. It refuses to
  start otherwise and names the path and the fix.
- **Zeroing** (:func:`wipe`): buffers it owns (the seed, a payload before encryption, a PIN
  letter's plaintext) are overwritten after use. What Python cannot zero is in docs/hsm.md.

Linux only (prctl, capset through ctypes); the service refuses to start where these fail.
"""

from __future__ import annotations

import ctypes
import grp
import logging
import os
import pwd
import resource
import stat
from dataclasses import dataclass
from pathlib import Path

from sealcard.errors import ConfigurationError
from sealcard.hsm.config import IssuerHsmSettings

_PR_SET_DUMPABLE = 4
_PR_SET_KEEPCAPS = 8
_MCL_CURRENT = 1
_MCL_FUTURE = 2
_CAP_IPC_LOCK = 14
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

log = logging.getLogger("sealcard.hsm.service")

# Loaded while the process may still read every file: after the drop it may not.
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


class HardeningError(ConfigurationError):
    """The service refuses to start: ``reason`` names which rule (for tests and metrics)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ServiceAccount:
    """The service's own Unix user."""

    name: str
    uid: int
    gid: int

    @classmethod
    def named(cls, name: str) -> ServiceAccount:
        if name == "root":
            raise HardeningError("root-user", "[issuer_hsm] service_user must not be root")
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise HardeningError(
                "no-user",
                f"there is no Unix user {name!r} for the issuer HSM service: create it"
                f" (useradd --system --user-group --no-create-home --shell /usr/sbin/nologin"
                f" {name}; tools/setup.sh does) or name another in [issuer_hsm] service_user",
            ) from None
        if entry.pw_uid == 0:
            raise HardeningError("root-user", f"the Unix user {name!r} has uid 0")
        return cls(name, entry.pw_uid, entry.pw_gid)


# ------------------------------------------------------------------------------ user


def require_own_user(account: ServiceAccount) -> None:
    """Refuse to run as root or as anyone but the service's own user."""
    uid = os.geteuid()
    if uid == 0:
        raise HardeningError(
            "root", "the issuer HSM service does not run as root (start it as root to drop)"
        )
    if uid != account.uid or os.getuid() != account.uid:
        try:
            who = pwd.getpwuid(uid).pw_name
        except KeyError:
            who = str(uid)
        raise HardeningError(
            "wrong-user",
            f"the issuer HSM service runs as its own Unix user {account.name!r}, not {who!r}:"
            f" start it as root (it drops to {account.name}) or as {account.name}",
        )


def become_service_user(account: ServiceAccount) -> None:
    """As root: switch to the service user for good, keeping only CAP_IPC_LOCK (to lock its
    memory without a memlock limit). Root cannot be regained afterwards (checked)."""
    if os.geteuid() != 0:
        raise HardeningError("not-root", "only root can switch to the service user")
    _check_libc(_libc.prctl(_PR_SET_KEEPCAPS, 1, 0, 0, 0), "prctl(PR_SET_KEEPCAPS)")
    os.initgroups(account.name, account.gid)
    os.setgid(account.gid)
    os.setuid(account.uid)  # real, effective and saved uid: root is gone
    _set_capabilities(1 << _CAP_IPC_LOCK)
    _check_libc(_libc.prctl(_PR_SET_KEEPCAPS, 0, 0, 0, 0), "prctl(PR_SET_KEEPCAPS)")
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:  # pragma: no cover - the kernel forbids it
        raise HardeningError("regained-root", "the service could become root again")
    require_own_user(account)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _set_capabilities(mask: int) -> None:
    """Effective and permitted capabilities = ``mask`` (capabilities 0..31), nothing else."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    data[0].effective = data[0].permitted = mask
    _check_libc(_libc.capset(ctypes.byref(header), data), "capset")


def _check_libc(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise HardeningError("syscall", f"{what} failed: {os.strerror(errno)}")


# ------------------------------------------------------------------------- the process


def lock_down_process() -> None:
    """No core dumps, no ptrace by the same user, every page locked in memory (never swapped).

    Call in every process of the service (memory locks are not inherited by fork)."""
    _check_libc(_libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE, 0)")
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if _libc.mlockall(_MCL_CURRENT | _MCL_FUTURE) != 0:
        errno = ctypes.get_errno()
        soft, _hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
        limit = "unlimited" if soft == resource.RLIM_INFINITY else f"{soft // 1024} KiB"
        raise HardeningError(
            "mlock",
            f"cannot lock the issuer HSM service's memory ({os.strerror(errno)}; memlock limit"
            f" {limit}): start it as root (it keeps CAP_IPC_LOCK when it drops), or give the"
            " service user CAP_IPC_LOCK or LimitMEMLOCK=infinity",
        )


def wipe(buffer: bytearray | memoryview | ctypes.Array[ctypes.c_char]) -> None:
    """Overwrite a buffer this process owns with zeros (the seed, a payload, a letter)."""
    if isinstance(buffer, ctypes.Array):
        ctypes.memset(buffer, 0, ctypes.sizeof(buffer))
        return
    view = memoryview(buffer).cast("B")
    view[:] = bytes(len(view))


# ------------------------------------------------------------------------ permissions


@dataclass(frozen=True)
class ServicePaths:
    """What the service reads, and where it listens."""

    home: Path
    config: Path
    trusted_files: tuple[Path, ...]  # request key, issuer certificate, SoftHSM configuration
    secret_files: tuple[Path, ...]  # the issuer token's PIN file
    token_dir: Path | None  # the issuer token's SoftHSM folder (None: another PKCS#11 module)
    run_dir: Path


def service_paths(home: Path, settings: IssuerHsmSettings) -> ServicePaths:
    """Everything the service reads or listens on, for the permission checks."""
    issuer = settings.issuer
    trusted = [settings.request_public_key, settings.issuer_certificate]
    token_dir = None
    if issuer.softhsm_conf is not None:
        trusted.append(issuer.softhsm_conf)
        if issuer.softhsm_conf.exists():
            token_dir = softhsm_token_dir(issuer.softhsm_conf, issuer.token_label)
    secrets = () if issuer.pin_file is None or issuer.pin_env else (issuer.pin_file,)
    return ServicePaths(
        home=home,
        config=home / "config.toml",
        trusted_files=tuple(trusted),
        secret_files=secrets,
        token_dir=token_dir,
        run_dir=settings.socket_path.parent,
    )


def _stat(path: Path) -> os.stat_result:
    try:
        return path.stat()
    except FileNotFoundError:
        raise HardeningError("missing", f"refusing to start: {path} does not exist") from None
    except OSError as exc:
        raise HardeningError(
            "unreachable",
            f"refusing to start: the service user cannot reach {path} ({exc.strerror}): let"
            " it pass every folder on the way (chmod o+x or g+x for its group)",
        ) from None


def _refuse_loose(path: Path, reason: str, fix: str) -> None:
    info = _stat(path)
    raise HardeningError(
        "loose-permissions",
        f"refusing to start: {path} {reason} (mode {stat.S_IMODE(info.st_mode):04o},"
        f" owner uid {info.st_uid}): {fix}",
    )


def check_config_is_trusted(paths: ServicePaths, account: ServiceAccount) -> None:
    """The home, config.toml and the SoftHSM configuration are the service's or root's and
    writable by nobody else: what they name may be trusted (checked before root acts on it)."""
    softhsm = [p for p in paths.trusted_files if p.name.endswith(".conf")]
    for path in (paths.home, paths.config, *softhsm):
        info = _stat(path)
        if info.st_uid not in {0, account.uid}:
            _refuse_loose(path, "belongs to another user", f"chown root or {account.name} {path}")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            _refuse_loose(path, "is writable by group or others", f"chmod go-w {path}")


def check_permissions(
    paths: ServicePaths, account: ServiceAccount, socket_group: str | None = None
) -> None:
    """Refuse (HardeningError) anything the service trusts that others could change or read."""
    trusted_owners = {0, account.uid}
    trusted = [paths.home, paths.config]
    for path in paths.trusted_files:
        trusted += [path.parent, path]
    trusted += [p.parent for p in paths.secret_files]
    if paths.token_dir is not None:
        trusted.append(paths.token_dir.parent)
    for path in dict.fromkeys(trusted):
        info = _stat(path)
        if info.st_uid not in trusted_owners:
            _refuse_loose(path, "belongs to another user", f"chown root or {account.name} {path}")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            _refuse_loose(path, "is writable by group or others", f"chmod go-w {path}")
    secrets = list(paths.secret_files)
    if paths.token_dir is not None:
        secrets.append(paths.token_dir)
        secrets.extend(sorted(paths.token_dir.iterdir()))
    for path in secrets:
        info = _stat(path)
        if info.st_uid != account.uid:
            _refuse_loose(path, "is not the service user's", f"chown {account.name} {path}")
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            _refuse_loose(path, "is open to group or others", f"chmod go= {path}")
    run = paths.run_dir
    info = _stat(run)
    allowed_group = stat.S_IRGRP | stat.S_IXGRP if socket_group else 0
    if info.st_uid != account.uid:
        _refuse_loose(
            run, "(the socket's folder) is not the service user's", f"chown {account.name} {run}"
        )
    if info.st_mode & (stat.S_IRWXG & ~allowed_group | stat.S_IRWXO):
        fix = "chmod 750" if socket_group else "chmod 700"
        _refuse_loose(run, "(the socket's folder) is open to others", f"{fix} {run}")


def check_socket_path(socket_path: Path, account: ServiceAccount) -> None:
    """A leftover socket of this user may be replaced; anything else at that path is refused."""
    try:
        info = socket_path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode) or info.st_uid != account.uid:
        raise HardeningError(
            "socket-path",
            f"refusing to start: {socket_path} exists and is not this service's old socket",
        )
    socket_path.unlink()


def _group_id(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise HardeningError("no-group", f"no Unix group {name!r} (socket_group)") from None


def socket_mode(socket_path: Path, socket_group: str | None) -> None:
    """0600, or 0660 with ``socket_group`` (the issuer system's group) as the socket's group."""
    if socket_group is None:
        os.chmod(socket_path, 0o600)
        return
    os.chown(socket_path, -1, _group_id(socket_group))
    os.chmod(socket_path, 0o660)


# ------------------------------------------------------------- handing files to the user


def grant_service_access(
    paths: ServicePaths, account: ServiceAccount, socket_group: str | None = None
) -> list[str]:
    """As root: give the service user access to what it needs; returns what changed.

    The issuer token, its PIN file and the socket's folder become the service user's; the
    folders on the way (home, hsm/, the tokens folder, secrets/) and the config files it reads
    get the service user's group with search (folders) or read (files) permission. With
    ``socket_group`` the socket's folder belongs to that group, which may enter it (0750), so
    an issuer system in that group reaches the socket. Only access is added: a mode that is
    too open is left as it is, for :func:`check_permissions` to refuse (with the path and the
    fix) rather than to be mended behind the operator's back.
    """
    changes: list[str] = []
    check_config_is_trusted(paths, account)  # else a rewritten config could name any file

    def own(path: Path, owner_bits: int, gid: int = account.gid) -> None:
        if not _folders_between(paths.home, path):  # never hand out anything outside the home
            log.warning("service access: %s is outside the home: left as it is", path)
            return
        info = path.stat()
        if (info.st_uid, info.st_gid) != (account.uid, gid):
            os.chown(path, account.uid, gid)
            changes.append(f"chown {account.name}:{gid} {path}")
        mode = stat.S_IMODE(info.st_mode)
        if mode & owner_bits != owner_bits:
            os.chmod(path, mode | owner_bits)
            changes.append(f"chmod {mode | owner_bits:04o} {path}")

    def group_may(path: Path, bits: int) -> None:
        if not _folders_between(paths.home, path):
            log.warning("service access: %s is outside the home: left as it is", path)
            return
        info = path.stat()
        if info.st_uid == account.uid:
            return
        if info.st_gid != account.gid:
            os.chown(path, -1, account.gid)
            changes.append(f"chgrp {account.name} {path}")
        mode = stat.S_IMODE(info.st_mode)
        if mode & bits != bits:
            os.chmod(path, mode | bits)
            changes.append(f"chmod {mode | bits:04o} {path}")

    search, read = stat.S_IXGRP, stat.S_IRGRP
    file_bits, dir_bits = stat.S_IRUSR | stat.S_IWUSR, stat.S_IRWXU
    group_may(paths.home, search)
    group_may(paths.config, read)
    for path in paths.trusted_files:
        for folder in _folders_between(paths.home, path.parent):
            group_may(folder, search)
        group_may(path, read)
    for path in paths.secret_files:
        for folder in _folders_between(paths.home, path.parent):
            group_may(folder, search)
        own(path, file_bits)
    if paths.token_dir is not None:
        tokens = paths.token_dir.parent
        for folder in _folders_between(paths.home, tokens.parent):
            group_may(folder, search)
        group_may(tokens, search | read)  # SoftHSM lists the token folders
        own(paths.token_dir, dir_bits)
        for item in paths.token_dir.iterdir():
            own(item, file_bits)
    paths.run_dir.mkdir(mode=0o700, exist_ok=True)
    for folder in _folders_between(paths.home, paths.run_dir.parent):
        group_may(folder, search)
    if socket_group is None:
        own(paths.run_dir, dir_bits)
    else:
        own(paths.run_dir, dir_bits | stat.S_IRGRP | stat.S_IXGRP, _group_id(socket_group))
    for change in changes:
        log.info("service access: %s", change)
    return changes


def _folders_between(home: Path, folder: Path) -> list[Path]:
    """``folder`` and its parents up to and including ``home`` (nothing outside the home)."""
    try:
        relative = folder.resolve().relative_to(home.resolve())
    except ValueError:
        return []
    out = [home]
    current = home
    for part in relative.parts:
        current = current / part
        out.append(current)
    return out


def softhsm_token_dir(softhsm_conf: Path, token_label: str) -> Path | None:
    """The folder of a SoftHSM token (file back end) by its label, or None if not found."""
    tokendir: Path | None = None
    for line in softhsm_conf.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "directories.tokendir":
            tokendir = Path(value.strip())
    if tokendir is None or not tokendir.is_dir():
        return None
    padded = token_label.encode("utf-8").ljust(32, b" ")
    for candidate in sorted(tokendir.iterdir()):
        token_object = candidate / "token.object"
        try:
            if padded in token_object.read_bytes():
                return candidate
        except OSError:
            continue
    return None
