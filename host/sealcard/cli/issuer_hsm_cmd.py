"""`sealcard issuer hsm`: the issuer HSM and the issuer-system HSM (registered on `issuer`)."""

from __future__ import annotations

import io
import os
import sys
from datetime import date
from pathlib import Path
from typing import BinaryIO

import click

from sealcard.cli.issuer_common import (
    home_option,
    hsm_client,
    issuer_emit,
    issuer_json_option,
    log_level_option,
    open_records,
)
from sealcard.files import check_new_file, prepare_dir, remove_if_empty, write_new_file
from sealcard.hsm.config import DEFAULT_SERVICE_USER
from sealcard.issuer.config import load_home

MODULE_ENV = "SEALCARD_PKCS11_MODULE"


@click.group(name="hsm")
def hsm_group() -> None:
    """The issuer HSM and the issuer-system HSM (SoftHSM2 by default, any PKCS#11 module)."""


@hsm_group.command(name="serve")
@home_option
@log_level_option
def hsm_serve(home: Path | None, log_level: str) -> None:
    """Run the issuer HSM service in the foreground (Ctrl-C or SIGTERM stops it).

    It is the only process that holds the BIP32 seed or a user private key in clear. It runs
    as its own Unix user ([issuer_hsm] service_user, default sealcard-hsm): started as root it
    hands that user its files and drops to it; it refuses root, other users and loose
    permissions, locks its memory and cannot be dumped or traced. It listens on
    HOME/run/issuer-hsm.sock (mode 0600) and answers only requests signed with the issuer
    system's request key. Run it under a service manager in production (docs/hsm.md).
    """
    issuer_home = load_home(home)
    argv = [
        sys.executable,
        "-m",
        "sealcard.hsm.issuer_service",
        "--home",
        str(issuer_home.root),
        "--log-level",
        log_level.upper(),  # the service's logging takes the level's name
    ]
    os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter and module, no shell


@hsm_group.command(name="init")
@home_option
@click.option(
    "--single-token",
    is_flag=True,
    help="One token for both roles (issuer HSM and issuer-system HSM); default: two tokens.",
)
@click.option(
    "--module",
    "module_path",
    default=None,
    envvar=MODULE_ENV,
    show_envvar=True,
    help="PKCS#11 module for SoftHSM2 (default: found).",
)
@click.option(
    "--restore",
    is_flag=True,
    help="Disaster recovery: take the seed from its SLIP-39 shares, read from standard input "
    "(one share a line, at least the threshold), instead of making a new one.",
)
@click.option(
    "--service-user",
    default=DEFAULT_SERVICE_USER,
    show_default=True,
    help="The Unix user the issuer HSM service runs as (its own; run this as root and the "
    "user gets its token, PIN file and socket folder). In a container whose one account "
    "is the service's, that account.",
)
@click.option(
    "--socket-group",
    default=None,
    help="A Unix group that may connect to the service's socket (socket 0660): an issuer "
    "system that runs as another user than root joins it. Default: none (0600).",
)
@issuer_json_option
def hsm_init(
    home: Path | None,
    single_token: bool,
    module_path: str | None,
    restore: bool,
    service_user: str,
    socket_group: str | None,
    as_json: bool,
) -> None:
    """Create the SoftHSM2 tokens and keys of this issuer home and record them in config.toml.

    \b
    Issuer HSM token: issuer key pair (EC P-256, non-extractable), BIP32 seed (from the
      token's RNG), issuer certificate for PIN letters.
    Issuer-system token: the request-signing key and the key that wraps every card's
      device authentication key.
    Token PINs are random and written to HOME/secrets/*.user-pin (0600), never printed.
    Back up the seed right after: `sealcard issuer hsm backup-seed` (m-of-n shares).
    """
    from sealcard.hsm.setup import setup_hsms

    issuer_home = load_home(home)
    mnemonics = None
    if restore:
        lines = sys.stdin.read().splitlines()
        mnemonics = [line.strip() for line in lines if line.strip()]
        if not mnemonics:
            raise click.UsageError("--restore: no shares on standard input")
    settings = setup_hsms(
        issuer_home.root,
        separate_tokens=not single_token,
        module_path=module_path,
        seed_mnemonics=mnemonics,
        service_user=service_user,
        socket_group=socket_group,
    )
    payload = {
        "issuer_token": settings.issuer.token_label,
        "system_token": settings.system.token_label,
        "module": settings.issuer.module_path,
        "socket": str(settings.socket_path),
        "request_public_key": str(settings.request_public_key),
        "issuer_certificate": str(settings.issuer_certificate),
    }
    text = (
        f"issuer HSM token        {settings.issuer.token_label}\n"
        f"issuer-system HSM token {settings.system.token_label}\n"
        f"module                  {settings.issuer.module_path}\n"
        f"next: sealcard issuer hsm serve --home {issuer_home.root}"
    )
    issuer_emit(as_json, payload, text)


@hsm_group.group(name="mailer")
def mailer_group() -> None:
    """Mailers' public keys, held by the issuer HSM for the PIN letters (P2)."""


@mailer_group.command(name="add")
@home_option
@click.option("--id", "mailer_id", required=True, help="Mailer id that orders name (--mailer).")
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="The mailer's RSA public key (PEM or DER SubjectPublicKeyInfo, 2048 bits or more).",
)
@issuer_json_option
def mailer_add(home: Path | None, mailer_id: str, key_file: Path, as_json: bool) -> None:
    """Register (or replace) a mailer's public key in the issuer HSM (service must run)."""
    from sealcard.crypto.keys import load_public_key, spki_der

    try:
        data = spki_der(load_public_key(key_file.read_bytes()))
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(
            f"{key_file}: {exc}; give the mailer's RSA public key", param_hint="--key"
        ) from None
    with hsm_client(home) as client:
        mailers = client.register_mailer(mailer_id, data)
    _record_mailers(home, mailers)
    issuer_emit(
        as_json,
        {"mailers": mailers},
        f"mailer {mailer_id} registered; mailers: {', '.join(mailers)}",
    )


def _record_mailers(home: Path | None, mailers: list[str]) -> None:
    """The records note the mailers the HSM holds, so orders can name them (schema 5)."""
    _, records = open_records(home)
    with records.db:
        records.record_mailers(mailers)


@mailer_group.command(name="list")
@home_option
@issuer_json_option
def mailer_list(home: Path | None, as_json: bool) -> None:
    """Mailers the issuer HSM knows (and the records note them, so orders may name them)."""
    with hsm_client(home) as client:
        mailers = client.mailers()
    _record_mailers(home, mailers)
    issuer_emit(as_json, {"mailers": mailers}, "\n".join(mailers) or "no mailers")


@hsm_group.command(name="xpub")
@home_option
@click.option(
    "--path",
    default=None,
    help="BIP32 path (default: the derivation base of this home, whose children are users).",
)
@issuer_json_option
def hsm_xpub(home: Path | None, path: str | None, as_json: bool) -> None:
    """The extended public key at a path: watch-only tools derive every user's key from it."""
    issuer_home = load_home(home)
    with hsm_client(home) as client:
        xpub = client.xpub(path or issuer_home.derivation_base)
    issuer_emit(as_json, {"path": path or issuer_home.derivation_base, "xpub": xpub}, xpub)


_PID_FILE = "issuer-hsm.pid"
_START_TIMEOUT_S = 60.0


@hsm_group.command(name="start")
@home_option
@log_level_option
@issuer_json_option
def hsm_start(home: Path | None, log_level: str, as_json: bool) -> None:
    """Start the issuer HSM service in the background (pid in HOME/run/issuer-hsm.pid).

    As root it drops to its own user (see `issuer hsm serve --help`). For development and
    tests; in production run `issuer hsm serve` under a service manager. Its log (every
    request by id, never its content) goes to HOME/run/issuer-hsm.log.
    """
    import subprocess
    import sys
    import time

    from sealcard.errors import ConfigurationError

    issuer_home = load_home(home)
    pid_file = issuer_home.run_dir / _PID_FILE
    if pid_file.exists() and _alive(int(pid_file.read_text().strip() or 0)):
        raise ConfigurationError(f"the issuer HSM service already runs (pid file {pid_file})")
    issuer_home.socket_path.unlink(missing_ok=True)
    log_path = issuer_home.run_dir / "issuer-hsm.log"
    log = log_path.open("ab")
    start_of_this_run = log.tell()
    argv = [
        sys.executable,
        "-m",
        "sealcard.hsm.issuer_service",
        "--home",
        str(issuer_home.root),
        "--log-level",
        log_level.upper(),  # the service's logging takes the level's name
    ]
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
        argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
    )
    pid_file.write_text(f"{proc.pid}\n", encoding="utf-8")
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not _listening(issuer_home.socket_path):
        exited = proc.poll() is not None
        if exited or time.monotonic() > deadline:
            if not exited:  # not up in time: do not leave it half started
                proc.kill()
                proc.wait()
            pid_file.unlink(missing_ok=True)
            why = (
                _last_error(log_path, start_of_this_run, proc.returncode)
                if exited
                else f"not listening after {_START_TIMEOUT_S:g} s; stopped"
            )
            raise ConfigurationError(
                f"the issuer HSM service did not start: {why} (log: {log_path})"
            )
        time.sleep(0.05)
    issuer_emit(
        as_json,
        {"pid": proc.pid, "socket": str(issuer_home.socket_path)},
        f"issuer HSM service running, pid {proc.pid}, socket {issuer_home.socket_path}",
    )


def _listening(socket_path: Path) -> bool:
    """Whether the service accepts connections (its socket file exists a moment before)."""
    import socket

    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(socket_path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _last_error(log_path: Path, offset: int, returncode: int) -> str:
    """The last ERROR line this start wrote to the service's log (its reason to refuse)."""
    try:
        with log_path.open("rb") as log:
            log.seek(offset)
            lines = log.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    errors = [line.split(" ERROR ", 1)[1] for line in lines if " ERROR " in line]
    return errors[-1] if errors else f"it exited with code {returncode}"


def _alive(pid: int) -> bool:
    import os

    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed service nobody has reaped yet is not running
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


@hsm_group.command(name="stop")
@home_option
@issuer_json_option
def hsm_stop(home: Path | None, as_json: bool) -> None:
    """Stop the service that `issuer hsm start` started (SIGTERM to the pid in its pid file)."""
    import os
    import signal
    import time

    issuer_home = load_home(home)
    pid_file = issuer_home.run_dir / _PID_FILE
    pid = int(pid_file.read_text().strip() or 0) if pid_file.exists() else 0
    stopped = False
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
        for _ in range(200):
            if not _alive(pid):
                break
            time.sleep(0.05)
        stopped = not _alive(pid)
    pid_file.unlink(missing_ok=True)
    issuer_emit(
        as_json,
        {"pid": pid or None, "stopped": stopped},
        f"issuer HSM service (pid {pid}) stopped"
        if stopped
        else "no issuer HSM service was running",
    )


@hsm_group.command(name="issuer-key")
@home_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the PEM here (default: print it).",
)
@issuer_json_option
def hsm_issuer_key(home: Path | None, out: Path | None, as_json: bool) -> None:
    """The issuer's public key (EC P-256), for the card provider to inject into every card."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    if out is not None:
        check_new_file(out, what="the issuer key file", fix="give another --out")
    with hsm_client(home) as client:
        key = client.issuer_public_key()
    pem = key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    if out is not None:
        out.write_text(pem)
    if as_json:
        issuer_emit(True, {"issuer_public_key_pem": pem, "out": str(out) if out else None}, "")
    elif out is None:
        click.echo(pem, nl=False)
    else:
        click.echo(f"issuer public key written to {out}")


@hsm_group.command(name="backup-seed")
@home_option
@click.option("--threshold", type=click.IntRange(2, 16), required=True, help="Shares needed (m).")
@click.option("--shares", type=click.IntRange(2, 16), required=True, help="Shares made (n).")
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="New folder for the shares, one file each (0600), to hand to n custodians.",
)
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["pdf", "text"]),
    default="pdf",
    show_default=True,
    help="pdf: one printable custody sheet per share (words, threshold, issuer, date); "
    "text: the share's words on one line.",
)
@issuer_json_option
def hsm_backup_seed(
    home: Path | None, threshold: int, shares: int, out_dir: Path, file_format: str, as_json: bool
) -> None:
    """Back up the BIP32 seed as m-of-n SLIP-39 shares (the only form it leaves the HSM in).

    Run it on the HSM host, as the issuer HSM's key ceremony: this process logs in to the
    issuer token for the ceremony only. Any m shares restore the seed
    (`sealcard issuer hsm init --restore`); fewer than m reveal nothing about it. Each share
    goes to its own file, never to the screen: by default a one-page PDF custody sheet that
    names the issuer (certificate subject and key fingerprint), the backup set, the date and
    the threshold. Print each sheet for its custodian and delete the files here.
    """
    import datetime as dt

    from sealcard.hsm.config import load_settings
    from sealcard.hsm.issuer_keys import export_seed_shares
    from sealcard.hsm.token import Token

    if threshold > shares:
        raise click.UsageError("--threshold cannot exceed --shares")
    # A new folder only: shares of two ceremonies must never mix. Made before anything else,
    # removed again if the ceremony fails before a share is written.
    prepare_dir(
        out_dir,
        what="the shares' folder",
        fix="give a new folder with --out-dir (shares of two backups must never mix)",
        new=True,
    )
    try:
        issuer_home = load_home(home)
        settings = load_settings(issuer_home.root, issuer_home.raw_config())
        subject, key_sha256 = _issuer_identity(settings.issuer_certificate)
        token = Token.open(settings.issuer, pool_size=1)
        try:
            mnemonics = export_seed_shares(token, threshold, shares)
        finally:
            token.close()
    except BaseException:
        remove_if_empty(out_dir)
        raise
    today = dt.datetime.now(dt.UTC).date()
    suffix = "pdf" if file_format == "pdf" else "txt"
    paths: list[str] = []
    try:
        for number, mnemonic in enumerate(mnemonics, start=1):
            path = out_dir / f"share-{number}-of-{shares}.{suffix}"
            if file_format == "pdf":
                sheet = io.BytesIO()
                _write_sheet(sheet, mnemonic, shares, subject, key_sha256, today)
                content = sheet.getvalue()
            else:
                content = (mnemonic + "\n").encode("ascii")
            paths.append(str(path))
            write_new_file(path, content, 0o600)
    except BaseException:
        # A partial set is still a set: remove every share written, and the folder.
        for written in paths:
            Path(written).unlink(missing_ok=True)
        remove_if_empty(out_dir)
        raise
    issuer_emit(
        as_json,
        {"threshold": threshold, "shares": shares, "format": file_format, "files": paths},
        f"{shares} shares written to {out_dir} (any {threshold} restore the seed)",
    )


def _issuer_identity(certificate_path: Path) -> tuple[str, str]:
    """The issuer certificate's subject and the SHA-256 of its public key, for the sheets."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    from sealcard.errors import ConfigurationError

    try:
        certificate = x509.load_pem_x509_certificate(certificate_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot read the issuer certificate {certificate_path}: {exc}"
        ) from None
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashes.Hash(hashes.SHA256())
    digest.update(spki)
    return certificate.subject.rfc4514_string(), digest.finalize().hex()


def _write_sheet(
    out: BinaryIO, mnemonic: str, shares: int, subject: str, key_sha256: str, day: date
) -> None:
    from sealcard.crypto.secret_sharing import share_info
    from sealcard.formats.custody_sheet import CustodySheet, render_custody_sheet

    info = share_info(mnemonic)
    sheet = CustodySheet(
        words=tuple(mnemonic.split()),
        number=info.number,
        shares=shares,
        threshold=info.threshold,
        set_id=info.set_id,
        issuer_subject=subject,
        issuer_key_sha256=key_sha256,
        created=day,
    )
    render_custody_sheet(sheet, out)
