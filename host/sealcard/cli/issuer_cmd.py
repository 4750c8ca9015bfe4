"""`sealcard issuer`: the issuer system (records, batch sealing) and its HSMs."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import click

from sealcard.cli.common import (
    JSON_HELP_ONE_OBJECT,
    emit,
    fd_option,
    json_option,
    open_session,
    read_secret,
    reader_option,
    readers_option,
)
from sealcard.issuer.config import IssuerHome, init_home, load_home
from sealcard.issuer.db import Database, redact_url
from sealcard.issuer.migrations import apply_migrations, current_version
from sealcard.issuer.records import DEFAULT_DERIVATION_BASE, PIN_SOURCES, Records

F = TypeVar("F", bound=Callable[..., Any])


def _home_option(func: F) -> F:
    return click.option(
        "--home",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Issuer home folder (default: $SEALCARD_ISSUER_HOME, else ./issuer-home).",
    )(func)


_json_option = json_option(JSON_HELP_ONE_OBJECT)


def _emit(as_json: bool, payload: dict[str, Any], text: str) -> None:
    emit(as_json, payload, text, sort_keys=True)


def _open_records(home_dir: Path | None) -> tuple[IssuerHome, Records]:
    home = load_home(home_dir)
    return home, Records.open(home.database_url, home.default_actor())


@click.group(name="issuer")
def issuer() -> None:
    """Issuer system and issuer HSMs: users, orders, card stock, sealing.

    \b
    A first run:
      sealcard issuer init                    # ./issuer-home with a SQLite database
      sealcard issuer hsm init                # SoftHSM2 tokens and keys
      sealcard issuer hsm serve &             # the issuer HSM service
      sealcard issuer user add --name "Ada Lovelace" --address "12 St James's Sq, London"
      sealcard issuer order --user 1
      sealcard issuer pack import-fake --cards 10     # dev only: cards that exist nowhere
      sealcard issuer seal
      sealcard issuer status

    Every command takes --home (default $SEALCARD_ISSUER_HOME, else ./issuer-home) and --json.
    """


# -- init ---------------------------------------------------------------------------------------


@issuer.command(name="init")
@_home_option
@click.option(
    "--db",
    "db_url",
    default=None,
    metavar="URL",
    help="Database URL: sqlite:///PATH (default sqlite:///issuer.db inside the home) or "
    "postgresql://USER@HOST/DB (needs the 'postgres' extra). A password belongs in "
    "~/.pgpass or PGPASSWORD, not here.",
)
@click.option(
    "--derivation-base",
    default=DEFAULT_DERIVATION_BASE,
    show_default=True,
    help="BIP32 path under which each derivation element is one normal index.",
)
@_json_option
def init_cmd(home: Path | None, db_url: str | None, derivation_base: str, as_json: bool) -> None:
    """Create the issuer home and bring the database schema up to date.

    Safe to run again: an existing config.toml is kept, and only missing migrations are
    applied (each in its own transaction, recorded in the schema_version table).
    """
    issuer_home, created = init_home(home, db_url, derivation_base)
    with Database(issuer_home.database_url) as db:
        applied = apply_migrations(db)
        version = current_version(db)
        records = Records(db, issuer_home.default_actor())
        base = records.initialize(issuer_home.derivation_base)
    payload = {
        "home": str(issuer_home.root),
        "config_created": created,
        "database": redact_url(issuer_home.database_url),
        "migrations_applied": applied,
        "schema_version": version,
        "derivation_base": base,
    }
    text = (
        f"issuer home {issuer_home.root} ({'created' if created else 'kept'})\n"
        f"database    {payload['database']}\n"
        f"schema      version {version}"
        + (f" (applied {', '.join(map(str, applied))})" if applied else " (up to date)")
        + f"\nderivation  {base}/<index>"
    )
    _emit(as_json, payload, text)


# -- users and orders ---------------------------------------------------------------------------


@issuer.group(name="user")
def user_group() -> None:
    """Customers (name and postal address)."""


@user_group.command(name="add")
@_home_option
@click.option("--name", required=True, help="The customer's name, as printed on the card.")
@click.option("--address", required=True, help="Postal address for the card and the PIN letter.")
@_json_option
def user_add(home: Path | None, name: str, address: str, as_json: bool) -> None:
    """Add a customer; prints the user id that `issuer order --user` takes."""
    _, records = _open_records(home)
    with records.db:
        user = records.add_user(name, address)
    _emit(as_json, {"user": asdict(user)}, f"user {user.id} added")


@issuer.command(name="order")
@_home_option
@click.option("--user", "user_id", type=int, required=True, help="User id (from `user add`).")
@click.option("--count", type=click.IntRange(1, 100_000), default=1, show_default=True)
@click.option(
    "--pin-source",
    type=click.Choice(PIN_SOURCES),
    default="hsm",
    show_default=True,
    help="hsm: the issuer HSM makes PIN and PUK, seals them in the blob and writes the PIN "
    "letter (FIG. 5); none: no PIN in the blob (the bureau or the user sets it).",
)
@click.option(
    "--mailer",
    "mailer_id",
    default=None,
    help="Mailer that sends the PIN letter (registered with `issuer hsm mailer add`); "
    "required with --pin-source hsm.",
)
@_json_option
def order_cmd(
    home: Path | None,
    user_id: int,
    count: int,
    pin_source: str,
    mailer_id: str | None,
    as_json: bool,
) -> None:
    """Order cards for a user (state `requested`; `issuer seal` takes them from there)."""
    _, records = _open_records(home)
    with records.db:
        orders = records.request_orders(user_id, count, pin_source=pin_source, mailer_id=mailer_id)
    ids = [o.id for o in orders]
    _emit(
        as_json,
        {"orders": ids, "user": user_id, "state": "requested"},
        f"{len(ids)} order(s) for user {user_id}: {', '.join(map(str, ids))}",
    )


# -- card stock -----------------------------------------------------------------------------------


@issuer.group(name="pack")
def pack_group() -> None:
    """The stock of initialized cards, in packs used first in, first out."""


@pack_group.command(name="import-fake")
@_home_option
@click.option(
    "--cards", type=click.IntRange(1, 1_000_000), required=True, help="Cards in the pack."
)
@click.option("--pack", "pack_serial", default=None, help="Pack serial (default: FAKE-<random>).")
@click.option(
    "--rsa-pool",
    type=click.IntRange(1),
    default=None,
    help="Cycle through this many RSA keys instead of one per card (RSA keygen is slow; "
    "for benchmarks only: real cards never share a device key).",
)
@_json_option
def pack_import_fake(
    home: Path | None, cards: int, pack_serial: str | None, rsa_pool: int | None, as_json: bool
) -> None:
    """DEVELOPMENT AND TESTS ONLY: add a pack of fabricated cards.

    The cards exist nowhere: their keys are made here and thrown away, so blobs sealed for
    them can never be opened. The pack is recorded with source "fake" in the audit log. Real
    packs come from the card provider (pack file import: a later issue).
    """
    from sealcard.issuer.fake import import_fake_pack

    _, records = _open_records(home)
    with records.db:
        pack = import_fake_pack(records, cards, pack_serial, rsa_pool=rsa_pool)
    _emit(
        as_json,
        {"pack": pack.pack_serial, "cards": len(pack.cards), "source": "fake"},
        f"fake pack {pack.pack_serial}: {len(pack.cards)} cards added (not real cards)",
    )


@pack_group.command(name="list")
@_home_option
@_json_option
def pack_list(home: Path | None, as_json: bool) -> None:
    """Packs, oldest (used first) to newest, with their unused verified cards."""
    _, records = _open_records(home)
    with records.db:
        packs = records.packs()
    lines = [f"{p.pack_serial:24} {p.available:>8} / {p.cards:<8} {p.imported_at}" for p in packs]
    header = f"{'pack':24} {'unused':>8} / {'cards':<8} imported"
    _emit(as_json, {"packs": [asdict(p) for p in packs]}, "\n".join([header, *lines]))


@pack_group.command(name="import-cards")
@_home_option
@click.option(
    "--root",
    "root_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The card provider's root certificate (PEM or DER): every card must chain to it.",
)
@readers_option("Reader holding a card (repeat). Default: every reader holding a card.")
@click.option("--pack", "pack_serial", default=None, help="Pack serial (default: CARDS-<time>).")
@_json_option
def pack_import_cards(
    home: Path | None,
    root_path: Path,
    readers: tuple[str, ...],
    pack_serial: str | None,
    as_json: bool,
) -> None:
    """Add the initialized cards in the readers to the stock, as one pack.

    Each card's attestation is checked against the provider root (both
    root-signed keys, the signed device key), and it must be closed and hold
    this issuer's public key. One card that fails stops the import and adds
    nothing. Until the provider's pack file exists (a later issue), this is
    how real or simulated cards enter the stock.
    """
    import datetime as dt

    from sealcard.card.session import SealcardSession
    from sealcard.issuer.handover import card_init_from_public_data
    from sealcard.issuer.packs import import_pack
    from sealcard.parties.provider import check_card, load_root_certificate
    from sealcard.transport.pcsc import PcscConnection, readers_with_card

    root = load_root_certificate(root_path)
    names = list(readers) or readers_with_card()
    if not names:
        raise click.UsageError("no card in any reader")
    with _hsm_client(home) as client:
        issuer_key = client.issuer_public_key()
    cards = []
    for name in names:
        with PcscConnection.open(name) as connection:
            data, report = check_card(SealcardSession(connection), root)
        cards.append(card_init_from_public_data(data, report, issuer_key))
    serial = pack_serial or dt.datetime.now(dt.UTC).strftime("CARDS-%Y%m%dT%H%M%S")
    _, records = _open_records(home)
    with records.db:
        count = import_pack(records, serial, cards)
    payload = {"pack": serial, "cards": count, "serials": [c.serial.hex().upper() for c in cards]}
    _emit(as_json, payload, f"pack {serial}: {count} genuine cards added to the stock")


# -- status ---------------------------------------------------------------------------------------


@issuer.command(name="status")
@_home_option
@_json_option
def status_cmd(home: Path | None, as_json: bool) -> None:
    """Orders by state, card stock by pack, derivation counter, schema version."""
    issuer_home, records = _open_records(home)
    with records.db:
        status = records.status()
    payload = {"home": str(issuer_home.root), **asdict(status)}
    lines = [
        f"home        {issuer_home.root}",
        f"database    {status.database} (schema {status.schema_version})",
        f"derivation  {status.derivation_base}/<index>, next index {status.next_derivation_index}",
        f"users       {status.users}",
        "orders      " + (", ".join(f"{k} {v}" for k, v in status.orders.items() if v) or "none"),
        "stock       "
        + (", ".join(f"{p.pack_serial} {p.available}/{p.cards}" for p in status.packs) or "none"),
        f"audit log   {status.audit_entries} entries",
    ]
    _emit(as_json, payload, "\n".join(lines))


# -- sealing --------------------------------------------------------------------------------------


@issuer.command(name="seal")
@_home_option
@click.option("--pack", "pack_serial", default=None, help="Use only this pack's cards.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Seal at most N orders.")
@click.option(
    "--chunk-size",
    type=click.IntRange(1, 4096),
    default=None,
    help="Orders per issuer HSM round trip and per database commit [default: 256].",
)
@click.option(
    "--keygen-threads",
    type=click.IntRange(1, 64),
    default=None,
    help="PKCS#11 sessions making device authentication keys at once [default: 1].",
)
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Check the issuer signature of every blob before storing it.",
)
@_json_option
def seal_cmd(
    home: Path | None,
    pack_serial: str | None,
    limit: int | None,
    chunk_size: int | None,
    keygen_threads: int | None,
    verify: bool,
    as_json: bool,
) -> None:
    """Seal requested orders: card, derivation element, device authentication key, blob, PIN letter.

    Orders are taken oldest first, cards from the oldest pack first (or from --pack). Needs the
    issuer HSM service (`sealcard issuer hsm serve`). Safe to interrupt at any moment (even
    kill -9): run it again and it resumes the orders it had reserved, with the same cards and
    derivation elements, and seals nothing twice.
    """
    from sealcard.hsm.config import load_settings
    from sealcard.hsm.issuer_client import IssuerHsmClient
    from sealcard.hsm.system_hsm import DeviceAuthKeys, RequestSigner
    from sealcard.hsm.token import Token
    from sealcard.issuer.batch import DEFAULT_CHUNK_SIZE, DEFAULT_KEYGEN_THREADS, seal_orders

    issuer_home, records = _open_records(home)
    settings = load_settings(issuer_home.root, issuer_home.raw_config())
    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if as_json:
            return
        if bar is None:
            bar = click.progressbar(length=max(total, 1), label="sealing", show_pos=True)
            bar.__enter__()
        bar.update(done - bar.pos)

    threads = keygen_threads or DEFAULT_KEYGEN_THREADS
    with records.db:
        token = Token.open(settings.system, pool_size=threads + 1)  # +1: request signing
        try:
            client = IssuerHsmClient.for_settings(settings, RequestSigner(token))
            issuer_key = client.issuer_public_key() if verify else None
            try:
                report = seal_orders(
                    records,
                    DeviceAuthKeys(token),
                    client,
                    pack_serial=pack_serial,
                    limit=limit,
                    chunk_size=chunk_size or DEFAULT_CHUNK_SIZE,
                    progress=progress,
                    issuer_public_key=issuer_key,
                    keygen_threads=threads,
                )
            finally:
                if bar is not None:
                    bar.__exit__(None, None, None)
        finally:
            token.close()
    reasons = {
        "done": "every eligible order is sealed",
        "no_cards": "stopped: no unused verified cards left"
        + (f" in {pack_serial}" if pack_serial else ""),
        "limit": "stopped at --limit",
    }
    payload = {
        "sealed": report.sealed,
        "resumed": report.resumed,
        "seconds": round(report.seconds, 3),
        "cards_per_second": round(report.per_second, 1),
        "stopped": report.stopped,
    }
    text = (
        f"sealed {report.sealed} order(s) ({report.resumed} resumed) in {report.seconds:.2f} s"
        f" ({report.per_second:.0f}/s); {reasons[report.stopped]}"
    )
    _emit(as_json, payload, text)


# -- HSMs -----------------------------------------------------------------------------------------


@issuer.group(name="hsm")
def hsm_group() -> None:
    """The issuer HSM and the issuer-system HSM (SoftHSM2 by default, any PKCS#11 module)."""


@hsm_group.command(name="serve")
@_home_option
def hsm_serve(home: Path | None) -> None:
    """Run the issuer HSM service in the foreground (Ctrl-C or SIGTERM stops it).

    It is the only process that holds the BIP32 seed or a user private key in clear. It
    listens on HOME/run/issuer-hsm.sock (mode 0600) and answers only requests signed with the
    issuer system's request key. Run it under a service manager in production.
    """
    issuer_home = load_home(home)
    argv = [sys.executable, "-m", "sealcard.hsm.issuer_service", "--home", str(issuer_home.root)]
    os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter and module, no shell


@hsm_group.command(name="init")
@_home_option
@click.option(
    "--single-token",
    is_flag=True,
    help="One token for both roles (issuer HSM and issuer-system HSM); default: two tokens.",
)
@click.option(
    "--module",
    "module_path",
    default=None,
    help="PKCS#11 module for SoftHSM2 (default: $SEALCARD_PKCS11_MODULE, else found).",
)
@click.option(
    "--restore",
    is_flag=True,
    help="Disaster recovery: take the seed from its SLIP-39 shares, read from standard input "
    "(one share a line, at least the threshold), instead of making a new one.",
)
@_json_option
def hsm_init(
    home: Path | None, single_token: bool, module_path: str | None, restore: bool, as_json: bool
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
    _emit(as_json, payload, text)


@contextmanager
def _hsm_client(home: Path | None) -> Iterator[Any]:
    """A client of the running issuer HSM service, signing with the issuer-system token."""
    from sealcard.hsm.config import load_settings
    from sealcard.hsm.issuer_client import IssuerHsmClient
    from sealcard.hsm.system_hsm import RequestSigner
    from sealcard.hsm.token import Token

    issuer_home = load_home(home)
    settings = load_settings(issuer_home.root, issuer_home.raw_config())
    token = Token.open(settings.system)
    try:
        client = IssuerHsmClient.for_settings(settings, RequestSigner(token))
        try:
            yield client
        finally:
            client.close()
    finally:
        token.close()


@hsm_group.group(name="mailer")
def mailer_group() -> None:
    """Mailers' public keys, held by the issuer HSM for the PIN letters (P2)."""


@mailer_group.command(name="add")
@_home_option
@click.option("--id", "mailer_id", required=True, help="Mailer id that orders name (--mailer).")
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="The mailer's RSA public key (PEM or DER SubjectPublicKeyInfo, 2048 bits or more).",
)
@_json_option
def mailer_add(home: Path | None, mailer_id: str, key_file: Path, as_json: bool) -> None:
    """Register (or replace) a mailer's public key in the issuer HSM (service must run)."""
    from cryptography.hazmat.primitives import serialization

    data = key_file.read_bytes()
    if b"-----BEGIN" in data:
        key = serialization.load_pem_public_key(data)
        data = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    with _hsm_client(home) as client:
        mailers = client.register_mailer(mailer_id, data)
    _emit(
        as_json,
        {"mailers": mailers},
        f"mailer {mailer_id} registered; mailers: {', '.join(mailers)}",
    )


@mailer_group.command(name="list")
@_home_option
@_json_option
def mailer_list(home: Path | None, as_json: bool) -> None:
    """Mailers the issuer HSM knows."""
    with _hsm_client(home) as client:
        mailers = client.mailers()
    _emit(as_json, {"mailers": mailers}, "\n".join(mailers) or "no mailers")


@hsm_group.command(name="xpub")
@_home_option
@click.option(
    "--path",
    default=None,
    help="BIP32 path (default: the derivation base of this home, whose children are users).",
)
@_json_option
def hsm_xpub(home: Path | None, path: str | None, as_json: bool) -> None:
    """The extended public key at a path: watch-only tools derive every user's key from it."""
    issuer_home = load_home(home)
    with _hsm_client(home) as client:
        xpub = client.xpub(path or issuer_home.derivation_base)
    _emit(as_json, {"path": path or issuer_home.derivation_base, "xpub": xpub}, xpub)


_PID_FILE = "issuer-hsm.pid"
_START_TIMEOUT_S = 60.0


@hsm_group.command(name="start")
@_home_option
@_json_option
def hsm_start(home: Path | None, as_json: bool) -> None:
    """Start the issuer HSM service in the background (pid in HOME/run/issuer-hsm.pid).

    For development and tests; in production run `issuer hsm serve` under a service manager.
    Its errors go to HOME/run/issuer-hsm.log.
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
    log = (issuer_home.run_dir / "issuer-hsm.log").open("ab")
    argv = [sys.executable, "-m", "sealcard.hsm.issuer_service", "--home", str(issuer_home.root)]
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
        argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
    )
    pid_file.write_text(f"{proc.pid}\n", encoding="utf-8")
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not issuer_home.socket_path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            pid_file.unlink(missing_ok=True)
            log_path = issuer_home.run_dir / "issuer-hsm.log"
            raise ConfigurationError(f"the issuer HSM service did not start; see {log_path}")
        time.sleep(0.05)
    _emit(
        as_json,
        {"pid": proc.pid, "socket": str(issuer_home.socket_path)},
        f"issuer HSM service running, pid {proc.pid}, socket {issuer_home.socket_path}",
    )


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
    return True


@hsm_group.command(name="stop")
@_home_option
@_json_option
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
    _emit(
        as_json,
        {"pid": pid or None, "stopped": stopped},
        f"issuer HSM service (pid {pid}) stopped"
        if stopped
        else "no issuer HSM service was running",
    )


@hsm_group.command(name="issuer-key")
@_home_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the PEM here (default: print it).",
)
@_json_option
def hsm_issuer_key(home: Path | None, out: Path | None, as_json: bool) -> None:
    """The issuer's public key (EC P-256), for the card provider to inject into every card."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    with _hsm_client(home) as client:
        key = client.issuer_public_key()
    pem = key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    if out is not None:
        out.write_text(pem)
    if as_json:
        _emit(True, {"issuer_public_key_pem": pem, "out": str(out) if out else None}, "")
    elif out is None:
        click.echo(pem, nl=False)
    else:
        click.echo(f"issuer public key written to {out}")


# -- hand-over to the bureau and the mailer -------------------------------------------------------


@issuer.command(name="export")
@_home_option
@click.option(
    "--blob-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for the bureau: one <SERIAL>.blob per sealed card.",
)
@click.option(
    "--letter-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the mailer: one <SERIAL>.p7m PIN letter per card that has one.",
)
@_json_option
def export_cmd(home: Path | None, blob_dir: Path, letter_dir: Path | None, as_json: bool) -> None:
    """Hand every sealed order to the bureau (blobs) and the mailer (PIN letters).

    Each blob is encrypted to its card and signed by the issuer HSM; each
    letter is encrypted to the mailer and signed. The orders move to
    sent_to_bureau; an interrupted export is simply run again.
    """
    from sealcard.issuer.handover import export_for_bureau

    _, records = _open_records(home)
    with records.db:
        report = export_for_bureau(records, blob_dir, letter_dir)
    payload = {
        "orders": report.orders,
        "blobs": [str(p) for p in report.blobs],
        "letters": [str(p) for p in report.letters],
    }
    text = f"{len(report.blobs)} blobs to {blob_dir}" + (
        f", {len(report.letters)} PIN letters to {letter_dir}" if letter_dir else ""
    )
    _emit(as_json, payload, text)


@issuer.command(name="results")
@_home_option
@click.argument("results_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_json_option
def results_cmd(home: Path | None, results_file: Path, as_json: bool) -> None:
    """Apply the bureau's result data (from `sealcard bureau personalize --results`).

    Each card serial's order moves to personalized or failed. Serials the
    issuer did not send, or already settled, change nothing.
    """
    from sealcard.issuer.handover import BureauResult, apply_bureau_results

    try:
        document = json.loads(results_file.read_text())
        results = [
            BureauResult(bytes.fromhex(card["serial"]), bool(card["personalized"]), card["reason"])
            for card in document["cards"]
            if card.get("serial")
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise click.BadParameter(f"not a bureau result file: {exc}") from exc
    _, records = _open_records(home)
    with records.db:
        counts = apply_bureau_results(records, results)
    _emit(
        as_json,
        counts,
        f"{counts['personalized']} personalized, {counts['failed']} failed, "
        f"{counts['unknown']} unknown serials",
    )


# -- the issuer and a card it issued (claim 14) --------------------------------------------------


@contextmanager
def _card_admin(home: Path | None, reader: str | None) -> Iterator[tuple[Any, Any, Any]]:
    """(session, records, device-auth key signer) for an issuer command to the card in `reader`."""
    from sealcard.hsm.config import load_settings
    from sealcard.hsm.system_hsm import DeviceAuthKeys
    from sealcard.hsm.token import Token

    issuer_home, records = _open_records(home)
    settings = load_settings(issuer_home.root, issuer_home.raw_config())
    token = Token.open(settings.system)
    try:
        with records.db, open_session(reader) as (_, session):
            yield session, records, DeviceAuthKeys(token)
    finally:
        token.close()


@issuer.group(name="card")
def card_group() -> None:
    """Commands the issuer signs for one card it issued (issuer-authenticated, claim 14).

    The card's private device authentication key is kept wrapped in the records; the
    issuer-system HSM unwraps it only to sign one command over the card's fresh challenge.
    """


@card_group.command(name="reset-pin")
@reader_option("Reader holding the card.")
@fd_option(
    "--new-pin-fd",
    "Read the new PIN from file descriptor N instead of a hidden prompt (typed twice).",
)
@_home_option
@_json_option
def card_reset_pin(
    reader: str | None, new_pin_fd: int | None, home: Path | None, as_json: bool
) -> None:
    """Issuer-assisted PIN reset: set a new PIN and fill both retry counters.

    For a user who lost PIN and PUK: the card obeys only a command signed with
    its own device authentication key over its fresh challenge.
    """
    from sealcard.parties.issuer_admin import reset_pin

    new_pin = read_secret(new_pin_fd, "New PIN", confirm=True)
    with _card_admin(home, reader) as (session, records, keys):
        reset_pin(session, records, keys, new_pin)
        serial = session.serial.hex().upper()
    _emit(as_json, {"serial": serial, "pin_reset": True}, f"card {serial}: PIN reset by the issuer")


@card_group.command(name="terminate")
@reader_option("Reader holding the card.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (irreversible!).")
@_home_option
@_json_option
def card_terminate(reader: str | None, yes: bool, home: Path | None, as_json: bool) -> None:
    """Terminate a card for good: the card wipes the user key and refuses all use.

    Irreversible. The user's funds stay reachable through the user key's
    derivation in the issuer HSM (a new card for the same derivation element is
    a policy decision, not a command).
    """
    from sealcard.parties.issuer_admin import terminate

    if not yes:
        click.confirm("Terminate this card for good?", abort=True, err=True)
    with _card_admin(home, reader) as (session, records, keys):
        terminate(session, records, keys)
        serial = session.serial.hex().upper()
    _emit(as_json, {"serial": serial, "terminated": True}, f"card {serial}: terminated")


@hsm_group.command(name="backup-seed")
@_home_option
@click.option("--threshold", type=click.IntRange(2, 16), required=True, help="Shares needed (m).")
@click.option("--shares", type=click.IntRange(2, 16), required=True, help="Shares made (n).")
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="New folder for the shares, one file each (0600), to hand to n custodians.",
)
@_json_option
def hsm_backup_seed(
    home: Path | None, threshold: int, shares: int, out_dir: Path, as_json: bool
) -> None:
    """Back up the BIP32 seed as m-of-n SLIP-39 shares (the only form it leaves the HSM in).

    Run it on the HSM host, as the issuer HSM's key ceremony: this process logs in to the
    issuer token for the ceremony only. Any m shares restore the seed
    (`sealcard issuer hsm init --restore`); fewer than m reveal nothing about it. Each share
    goes to its own file, never to the screen: move each to its custodian's medium and
    delete it here.
    """
    from sealcard.hsm.config import load_settings
    from sealcard.hsm.issuer_service import export_seed_shares
    from sealcard.hsm.token import Token

    if threshold > shares:
        raise click.UsageError("--threshold cannot exceed --shares")
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=False)
    issuer_home = load_home(home)
    settings = load_settings(issuer_home.root, issuer_home.raw_config())
    token = Token.open(settings.issuer, pool_size=1)
    try:
        mnemonics = export_seed_shares(token, threshold, shares)
    finally:
        token.close()
    paths = []
    for number, mnemonic in enumerate(mnemonics, start=1):
        path = out_dir / f"share-{number}-of-{shares}.txt"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(mnemonic + "\n")
        paths.append(str(path))
    _emit(
        as_json,
        {"threshold": threshold, "shares": shares, "files": paths},
        f"{shares} shares written to {out_dir} (any {threshold} restore the seed)",
    )
