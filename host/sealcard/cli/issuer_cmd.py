"""`sealcard issuer`: the issuer system (records, batch sealing) and its HSMs.

This module holds the `issuer` group and init, user, order, status and seal; the
subgroups live in issuer_hsm_cmd (hsm), issuer_stock_cmd (pack), issuer_party_cmd (keys,
party, pack import, export, receive, results: the sealed files), issuer_card_cmd (card),
issuer_people_cmd (operator, user import), issuer_serve_cmd (serve) and issuer_audit_cmd
(audit), and are registered on the group at the bottom.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from sealcard.cli.common import read_text_file
from sealcard.cli.issuer_audit_cmd import audit_group
from sealcard.cli.issuer_card_cmd import card_group
from sealcard.cli.issuer_common import home_option, issuer_emit, issuer_json_option, open_records
from sealcard.cli.issuer_hsm_cmd import hsm_group
from sealcard.cli.issuer_party_cmd import (
    export_cmd,
    keys_group,
    pack_import,
    party_group,
    receive_cmd,
    results_cmd,
)
from sealcard.cli.issuer_people_cmd import operator_group, user_import
from sealcard.cli.issuer_serve_cmd import serve_cmd
from sealcard.cli.issuer_stock_cmd import pack_group
from sealcard.cli.outcome import CliFail
from sealcard.issuer.config import init_home
from sealcard.issuer.lifecycle import OrderState
from sealcard.issuer.terms import CHANNELS, DEFAULT_DERIVATION_BASE, PIN_SOURCES

if TYPE_CHECKING:
    from sealcard.issuer.records import Order

# The records, the database drivers and the HSM are imported by the commands that use them
# (docs/architecture.md, "Starting fast"): `sealcard issuer --help` loads none of them.


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

    \b
    With the other parties (sealed files, docs/files.md):
      sealcard issuer keys init --name bank --out issuer.pem   # hand it to every party
      sealcard issuer party add --role bureau --cert bureau.pem
      sealcard issuer pack import --file device-init-PACK-1.p7m
      sealcard issuer export --bureau print-house
      sealcard issuer receive --file results-B1.p7m --file shipping-B1.p7m

    Every command takes --home (default $SEALCARD_ISSUER_HOME, else ./issuer-home) and --json.
    """


# -- init ---------------------------------------------------------------------------------------


@issuer.command(name="init")
@home_option
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
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The HTTPS API's server certificate (PEM) from the bank's CA; default: a "
    "self-signed one made now in HOME/tls.",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The key of --tls-cert (PEM, unencrypted, readable only by the service).",
)
@issuer_json_option
def init_cmd(
    home: Path | None,
    db_url: str | None,
    derivation_base: str,
    tls_cert: Path | None,
    tls_key: Path | None,
    as_json: bool,
) -> None:
    """Create the issuer home and bring the database schema up to date.

    Safe to run again: an existing config.toml is kept, and only missing migrations are
    applied (each in its own transaction, recorded in the schema_version table). Also writes
    the HTTPS API's [api] section and, unless --tls-cert/--tls-key name the bank's, a
    self-signed TLS certificate (`sealcard issuer serve`).
    """
    from sealcard.issuer.api_config import init_api
    from sealcard.issuer.db import Database, redact_url
    from sealcard.issuer.migrations import apply_migrations, current_version
    from sealcard.issuer.records import Records

    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("give both --tls-cert and --tls-key, or neither")
    issuer_home, created = init_home(home, db_url, derivation_base)
    with Database(issuer_home.database_url) as db:
        applied = apply_migrations(db)
        version = current_version(db)
        records = Records(db, issuer_home.default_actor())
        base = records.initialize(issuer_home.derivation_base)
    api, tls_made, fingerprint = init_api(issuer_home.root, tls_cert, tls_key)
    payload = {
        "home": str(issuer_home.root),
        "config_created": created,
        "tls_certificate": str(api.tls_cert),
        "tls_certificate_created": tls_made,
        "tls_sha256": fingerprint,
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
        + f"\nhttps api   {api.tls_cert} ({'made, self-signed' if tls_made else 'kept'});"
        f" SHA-256 {fingerprint}"
    )
    issuer_emit(as_json, payload, text)


# -- users and orders ---------------------------------------------------------------------------


@issuer.group(name="user")
def user_group() -> None:
    """Customers (name and postal address)."""


@user_group.command(name="add")
@home_option
@click.option("--name", required=True, help="The customer's name, as printed on the card.")
@click.option("--address", required=True, help="Postal address for the card and the PIN letter.")
@issuer_json_option
def user_add(home: Path | None, name: str, address: str, as_json: bool) -> None:
    """Add a customer; prints the user id that `issuer order --user` takes."""
    _, records = open_records(home)
    with records.db:
        user = records.add_user(name, address)
    issuer_emit(as_json, {"user": asdict(user)}, f"user {user.id} added")


@issuer.group(name="order", invoke_without_command=True)
@home_option
@click.option("--user", "user_id", type=int, default=None, help="User id (from `user add`).")
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
@click.option(
    "--channel",
    type=click.Choice(CHANNELS),
    default="bureau",
    show_default=True,
    help="bureau: sealed in batches (`issuer seal`) for the bureau; activation: sealed when "
    "the customer activates the card they hold (`sealcard user activate`).",
)
@issuer_json_option
@click.pass_context
def order_cmd(
    click_ctx: click.Context,
    home: Path | None,
    user_id: int | None,
    count: int,
    pin_source: str,
    mailer_id: str | None,
    channel: str,
    as_json: bool,
) -> None:
    """Order cards for a user (state `requested`), or look after orders.

    \b
      sealcard issuer order --user 1 --mailer post          # order a card
      sealcard issuer order import --file orders.csv        # orders for many customers
      sealcard issuer order list [--held]                   # orders, and why any is on hold
      sealcard issuer order retry --order ID                # seal a held order again
      sealcard issuer order cancel --order ID [--note TEXT] # end an order not personalized

    `issuer seal` takes bureau orders from `requested`; activation orders wait for the
    customer's card (`sealcard user activate`). The user and the mailer must exist when the
    order is made. A subcommand takes its own options, after its name.
    """
    if click_ctx.invoked_subcommand is not None:
        given = [
            name
            for name in click_ctx.params
            if click_ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
        ]
        if given:
            raise click.UsageError(
                f"`issuer order {click_ctx.invoked_subcommand}` takes its options after its"
                f" name (`sealcard issuer order {click_ctx.invoked_subcommand} --help`)"
            )
        return
    from sealcard.parties.issuer.home import open_issuer

    if user_id is None:
        raise click.UsageError(
            "--user is required to order a card (or `issuer order import --file`, or a"
            " subcommand: list, retry, cancel)"
        )
    with open_issuer(home) as ctx:
        orders = ctx.records.request_orders(
            user_id, count, pin_source=pin_source, mailer_id=mailer_id, channel=channel
        )
    ids = [o.id for o in orders]
    issuer_emit(
        as_json,
        {"orders": ids, "user": user_id, "state": "requested", "channel": channel},
        f"{len(ids)} order(s) for user {user_id}: {', '.join(map(str, ids))}",
    )


@order_cmd.command(name="import")
@home_option
@click.option(
    "--file",
    "orders_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="A CSV with the header customer_ref,channel,pin_source[,mailer][,count] "
    "(docs/api.md), taken whole or not at all.",
)
@issuer_json_option
def order_import(home: Path | None, orders_file: Path, as_json: bool) -> None:
    """Orders for many customers at once, by the bank's customer number (state `requested`).

    Every customer and mailer must exist; one bad line refuses the whole file.
    """
    from sealcard.formats.intake_csv import parse_orders
    from sealcard.parties.issuer.home import open_issuer
    from sealcard.parties.issuer.intake import import_orders

    rows = parse_orders(read_text_file(orders_file))
    with open_issuer(home) as ctx:
        ids = import_orders(ctx, rows).orders
    issuer_emit(
        as_json,
        {"orders": len(ids), "first": ids[0], "last": ids[-1], "state": "requested"},
        f"{len(ids)} order(s) added: {ids[0]}..{ids[-1]}",
    )


def _order_payload(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "user": order.user_id,
        "state": order.state.value,
        "held": order.held,
        "channel": order.channel,
        "card_serial": None if order.card_serial is None else order.card_serial.hex().upper(),
        "derivation_index": order.derivation_index,
        "replaces_order": order.replaces_order_id,
        "pin_source": order.pin_source,
        "mailer": order.mailer_id,
        "failure_reason": order.failure_reason,
        "updated_at": order.updated_at,
    }


def _order_line(order: Order) -> str:
    state = "on hold" if order.held else order.state.value
    card = order.card_serial.hex().upper() if order.card_serial is not None else "-"
    line = f"{order.id:>8}  user {order.user_id:<6} {state:<15} {order.channel:<10} card {card}"
    if order.failure_reason:
        line += f"  reason: {order.failure_reason}"
    return line


_ORDER_ID = click.option(
    "--order", "order_id", type=click.IntRange(1), required=True, help="The order's id."
)


@order_cmd.command(name="list")
@home_option
@click.option(
    "--state",
    type=click.Choice([s.value for s in OrderState]),
    default=None,
    help="Only orders in this state.",
)
@click.option("--held", is_flag=True, help="Only orders on hold (refused by the issuer HSM).")
@click.option(
    "--channel", type=click.Choice(CHANNELS), default=None, help="Only orders of this channel."
)
@click.option("--after", "after_id", type=click.IntRange(0), default=0, help="Ids above this.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@issuer_json_option
def order_list(
    home: Path | None,
    state: str | None,
    held: bool,
    channel: str | None,
    after_id: int,
    limit: int,
    as_json: bool,
) -> None:
    """Orders, oldest first, with the reason of any that could not be sealed or was cancelled.

    Page with --after (the last id shown) and --limit.
    """
    from sealcard.parties.issuer.home import open_issuer

    with open_issuer(home) as ctx:
        orders = ctx.records.list_orders(
            None if state is None else OrderState(state),
            limit,
            channel=channel,
            held=held,
            after_id=after_id,
        )
    issuer_emit(
        as_json,
        {"orders": [_order_payload(o) for o in orders]},
        "\n".join(_order_line(o) for o in orders) or "no orders",
    )


@order_cmd.command(name="retry")
@home_option
@_ORDER_ID
@issuer_json_option
def order_retry(home: Path | None, order_id: int, as_json: bool) -> None:
    """Take a held order off hold once its cause is fixed (e.g. the mailer registered with
    this host's issuer HSM); the next `issuer seal` seals it with its card and element."""
    from sealcard.parties.issuer.home import open_issuer

    with open_issuer(home) as ctx:
        order = ctx.records.retry_order(order_id)
    issuer_emit(
        as_json,
        {"order": _order_payload(order)},
        f"order {order_id} is no longer on hold; run `sealcard issuer seal`",
    )


@order_cmd.command(name="cancel")
@home_option
@_ORDER_ID
@click.option("--note", default=None, help="Why (kept in the order and the audit log).")
@issuer_json_option
def order_cancel(home: Path | None, order_id: int, note: str | None, as_json: bool) -> None:
    """End an order whose card was not personalized: requested, on hold, or sealed.

    It becomes `cancelled` with the reason kept; its card (if it had one) and its derivation
    element are not used again. Order again for the user if a card is still wanted. The
    console and the HTTPS API cancel the same way.
    """
    from sealcard.parties.issuer.home import open_issuer

    with open_issuer(home) as ctx:
        order = ctx.records.cancel_order(order_id, note=note)
    issuer_emit(
        as_json,
        {"order": _order_payload(order)},
        f"order {order_id} is now cancelled: {order.failure_reason}",
    )


# -- status ---------------------------------------------------------------------------------------


@issuer.command(name="status")
@home_option
@issuer_json_option
def status_cmd(home: Path | None, as_json: bool) -> None:
    """Orders by state, card stock by pack, derivation counter, schema version."""
    issuer_home, records = open_records(home)
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
        *(
            [f"on hold     {status.held_orders} order(s): sealcard issuer order list --held"]
            if status.held_orders
            else []
        ),
    ]
    issuer_emit(as_json, payload, "\n".join(lines))


# -- sealing --------------------------------------------------------------------------------------


@issuer.command(name="seal")
@home_option
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
    "--in-flight",
    "chunks_in_flight",
    type=click.IntRange(1, 64),
    default=None,
    help="Chunks sealed at once, each by its own issuer HSM worker [default: 2].",
)
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Check the issuer signature of one blob per chunk before storing it (the reply that "
    "carries them is signed by the issuer key and checked anyway).",
)
@click.option(
    "--verify-every-blob",
    is_flag=True,
    help="Check the issuer signature of every blob (about 0.1 ms per card).",
)
@issuer_json_option
def seal_cmd(
    home: Path | None,
    pack_serial: str | None,
    limit: int | None,
    chunk_size: int | None,
    keygen_threads: int | None,
    chunks_in_flight: int | None,
    verify: bool,
    verify_every_blob: bool,
    as_json: bool,
) -> None:
    """Seal requested orders: card, derivation element, device authentication key, blob, PIN letter.

    Orders are taken oldest first, cards from the oldest pack first (or from --pack). Needs the
    issuer HSM service (`sealcard issuer hsm serve`). Safe to interrupt at any moment (even
    kill -9): run it again and it resumes the orders it had reserved, with the same cards and
    derivation elements, and seals nothing twice.

    An order the issuer HSM cannot seal (e.g. a mailer this HSM does not hold) is put on hold
    with its reason while the others are sealed; the command then exits 1 and names it (see
    `issuer order list --held`, `issuer order retry|cancel`). On PostgreSQL several sealing
    hosts may seal at once (docs/issuer.md); on SQLite a second sealer is refused.
    """
    from sealcard.hsm.config import load_settings
    from sealcard.hsm.issuer_client import IssuerHsmClient
    from sealcard.hsm.system_hsm import DeviceAuthKeys, RequestSigner
    from sealcard.hsm.token import Token
    from sealcard.issuer.batch import (
        DEFAULT_CHUNK_SIZE,
        DEFAULT_CHUNKS_IN_FLIGHT,
        DEFAULT_KEYGEN_THREADS,
        seal_orders,
    )
    from sealcard.parties import issuer_audit

    issuer_home, records = open_records(home)
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
    in_flight = chunks_in_flight or DEFAULT_CHUNKS_IN_FLIGHT
    with records.db:
        # sessions: key generation of each chunk in flight, +1 for signing requests
        token = Token.open(settings.system, pool_size=in_flight * threads + 1)
        try:
            client = IssuerHsmClient.for_settings(settings, RequestSigner(token))
            issuer_key = client.issuer_public_key() if verify or verify_every_blob else None
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
                    chunks_in_flight=in_flight,
                    verify_every_blob=verify_every_blob,
                )
            finally:
                if bar is not None:
                    bar.__exit__(None, None, None)
            issuer_audit.checkpoint_in_token(records, token)  # docs/audit.md
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
        "held": [{"order": h.order_id, "reason": h.reason} for h in report.held],
        "seconds": round(report.seconds, 3),
        "cards_per_second": round(report.per_second, 1),
        "stopped": report.stopped,
    }
    text = (
        f"sealed {report.sealed} order(s) ({report.resumed} resumed) in {report.seconds:.2f} s"
        f" ({report.per_second:.0f}/s); {reasons[report.stopped]}"
    )
    if not report.held:
        issuer_emit(as_json, payload, text)
        return
    # Some orders could not be sealed (the rest were): exit 1 so a script notices.
    shown = report.held[:_HELD_SHOWN]
    message = (
        f"{len(report.held)} order(s) could not be sealed and are on hold: "
        + "; ".join(f"order {h.order_id}: {h.reason}" for h in shown)
        + (" ..." if len(report.held) > len(shown) else "")
        + " (see `sealcard issuer order list --held`; then `issuer order retry|cancel --order ID`)"
    )
    if not as_json:
        click.echo(text)  # what was sealed is done; the failure line names what was not
    raise CliFail(message, kind="OrdersHeld", payload=payload)


_HELD_SHOWN = 3


# -- subgroups and commands from the sibling modules ---------------------------------------------

pack_group.add_command(pack_import)
issuer.add_command(pack_group)
issuer.add_command(hsm_group)
issuer.add_command(keys_group)
issuer.add_command(party_group)
issuer.add_command(export_cmd)
issuer.add_command(receive_cmd)
issuer.add_command(results_cmd)
issuer.add_command(card_group)
user_group.add_command(user_import)
issuer.add_command(operator_group)
issuer.add_command(serve_cmd)
issuer.add_command(audit_group)
