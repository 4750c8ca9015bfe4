"""`sealcard issuer keys`, `issuer party`, `issuer pack import`, `issuer export`,
`issuer receive` and `issuer results`: the issuer's sealed files (registered on `issuer`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sealcard.cli.issuer_common import home_option, hsm_client, issuer_emit, issuer_json_option
from sealcard.cli.party_cmd import bundle_json, party_name_option
from sealcard.formats.party_csv import FileKind, Role

PEER_ROLES = (Role.PROVIDER, Role.BUREAU, Role.MAILER, Role.SHIPPER)


@click.group(name="keys")
def keys_group() -> None:
    """The issuer's key pair for sealed files, in the issuer-system HSM."""


@keys_group.command(name="init")
@home_option
@party_name_option("The issuer's name, as the other parties know it (lower-case, digits, . _ -).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the certificate file for the other parties here.",
)
@issuer_json_option
def keys_init(home: Path | None, name: str, out: Path | None, as_json: bool) -> None:
    """Make the issuer's party key (EC P-256) in the issuer-system HSM and its certificate.

    The certificate file holds the party certificate and the issuer HSM's certificate (its
    key signs blobs and PIN letters, and is the issuer key the provider puts on every card).
    Needs `issuer hsm init` first. Done once.
    """
    from sealcard.issuer.config import load_home
    from sealcard.parties.issuer_exchange import identity_path, issuer_keys_init

    bundle = issuer_keys_init(home, name)
    path = identity_path(load_home(home))
    if out is not None:
        out.write_bytes(bundle.pem())
    issuer_emit(
        as_json,
        {
            "certificate": str(path),
            "exported": None if out is None else str(out),
            **bundle_json(bundle),
        },
        f"issuer {name}: party key made in the issuer-system HSM\n"
        f"  certificate  {path} (hand it to the provider, bureau, mailer and shipper)\n"
        f"  fingerprint  {bundle.fingerprint}",
    )


@keys_group.command(name="export")
@home_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@issuer_json_option
def keys_export(home: Path | None, out: Path, as_json: bool) -> None:
    """Write the issuer's certificate file (for the other parties' `party add`)."""
    from sealcard.issuer.config import load_home
    from sealcard.parties.issuer_exchange import issuer_bundle

    bundle = issuer_bundle(load_home(home))
    out.write_bytes(bundle.pem())
    issuer_emit(as_json, {"out": str(out), **bundle_json(bundle)}, f"certificate file {out}")


@click.group(name="party")
def party_group() -> None:
    """The parties the issuer exchanges sealed files with."""


@party_group.command(name="add")
@home_option
@click.option(
    "--role",
    "role",
    type=click.Choice([r.value for r in PEER_ROLES]),
    required=True,
    help="The other party's role (must match its certificate).",
)
@click.option(
    "--cert",
    "cert_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The certificate file the party handed over (from its `keys init`).",
)
@issuer_json_option
def party_add(home: Path | None, role: str, cert_file: Path, as_json: bool) -> None:
    """Register a party's certificate (exchanged once, out of band; compare fingerprints).

    A mailer's letter key also goes to the issuer HSM (the service must run), under the
    mailer's name: orders name it with --mailer. Written to the audit log.

    Example: sealcard issuer party add --role bureau --cert bureau.pem
    """
    from sealcard.parties.issuer_exchange import add_party

    if role == Role.MAILER.value:
        with hsm_client(home) as client:
            bundle, added = add_party(home, cert_file, Role(role), client.register_mailer)
    else:
        bundle, added = add_party(home, cert_file, Role(role))
    issuer_emit(
        as_json,
        {"added": added, **bundle_json(bundle)},
        f"{role} {bundle.name} {'registered' if added else 'was already registered'}"
        f" (fingerprint {bundle.fingerprint})",
    )


@party_group.command(name="list")
@home_option
@issuer_json_option
def party_list(home: Path | None, as_json: bool) -> None:
    """The registered parties."""
    from sealcard.cli.issuer_common import open_records
    from sealcard.issuer.exchange_records import parties

    _, records = open_records(home)
    with records.db:
        rows = parties(records)
    issuer_emit(
        as_json,
        {"parties": [{"role": r.role, "name": r.name, "fingerprint": r.fingerprint} for r in rows]},
        "\n".join(f"{r.role:9} {r.name:24} {r.fingerprint}" for r in rows) or "no parties",
    )


def _bar(as_json: bool, total: int, label: str) -> Any:
    return None if as_json else click.progressbar(length=max(total, 1), label=label, show_pos=True)


@click.command(name="import")
@home_option
@click.argument("pack_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@issuer_json_option
def pack_import(home: Path | None, pack_file: Path, as_json: bool) -> None:
    """Take a provider's pack file (device initialization data) into stock.

    Checks that the file is addressed to this issuer, signed by a registered provider, not
    imported before; every card's attestation against that provider's root; that no serial
    is already in stock. All cards or none; the pack is used first in, first out.

    Example: sealcard issuer pack import device-init-PACK-1.p7m
    """
    from sealcard.parties.issuer_exchange import import_pack_file, open_issuer

    with open_issuer(home) as issuer:
        report = import_pack_file(issuer, pack_file)
    issuer_emit(
        as_json,
        {
            "pack": report.pack,
            "cards": report.cards,
            "provider": report.provider,
            "file_id": report.file_id,
        },
        f"pack {report.pack}: {report.cards} genuine cards from provider {report.provider}"
        " added to the stock",
    )


@click.command(name="export")
@home_option
@click.option(
    "--bureau", "bureau", default=None, help="The registered bureau (default: the only one)."
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the files go (default: HOME/outbox): personalization-BATCH.p7m for the bureau,"
    " pin-letters-BATCH-MAILER.p7m for each mailer.",
)
@click.option("--batch-size", type=click.IntRange(1, 1_000_000), default=1000, show_default=True)
@click.option("--limit", type=click.IntRange(1), default=None, help="Export at most N orders.")
@issuer_json_option
def export_cmd(
    home: Path | None,
    bureau: str | None,
    out_dir: Path | None,
    batch_size: int,
    limit: int | None,
    as_json: bool,
) -> None:
    """Hand the sealed orders to the bureau (one file per batch) and the PIN letters to the
    mailers, as sealed files; the orders move to sent_to_bureau.

    Each personalization file lists, per card: position, serial, sealed blob, whether the
    PIN comes in the blob or from the bureau, the mailer, the name for the card face and
    the shipping address. Safe to interrupt: run it again and it writes the batches it had
    started anew before taking new orders.

    Example: sealcard issuer export --bureau print-house --out-dir outbox/
    """
    from sealcard.parties.issuer_exchange import export_batches, open_issuer

    with open_issuer(home) as issuer:
        target = out_dir or issuer.records_home_outbox()
        report = export_batches(issuer, bureau, target, batch_size=batch_size, limit=limit)
    payload = {
        "bureau": report.bureau,
        "orders": report.orders,
        "batches": [
            {
                "batch": b.batch,
                "orders": b.orders,
                "personalization": str(b.personalization),
                "letters": {m: str(p) for m, p in b.letters.items()},
            }
            for b in report.batches
        ],
    }
    lines = [
        f"{report.orders} orders in {len(report.batches)} batch(es) for bureau {report.bureau}"
    ]
    for b in report.batches:
        lines.append(f"  {b.personalization}")
        lines.extend(f"  {p}" for p in b.letters.values())
    issuer_emit(as_json, payload, "\n".join(lines))


def _receive(
    home: Path | None, files: tuple[Path, ...], kinds: tuple[FileKind, ...], as_json: bool
) -> None:
    from sealcard.cli.party_cmd import finish
    from sealcard.errors import SealcardError
    from sealcard.parties.issuer_exchange import open_issuer, receive_file

    applied: list[dict[str, Any]] = []
    refused: list[dict[str, str]] = []
    with open_issuer(home) as issuer:
        for path in files:
            try:
                report = receive_file(issuer, path, kinds)
            except SealcardError as exc:
                refused.append({"file": str(path), "reason": str(exc)})
                if not as_json:
                    click.echo(f"error: {exc}", err=True)
                continue
            applied.append({"file": str(path), **report.__dict__})
    text = "\n".join(
        f"{a['file']}: {a['kind']} {a['batch']} from {a['sender']}: "
        + (", ".join(f"{k} {v}" for k, v in sorted(a["counts"].items())) or "nothing to change")
        for a in applied
    )
    finish(
        as_json,
        not refused,
        {"applied": applied, "refused": refused},
        text or "no file applied",
        f"{len(refused)} file(s) refused, nothing of them taken in",
    )


@click.command(name="receive")
@home_option
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@issuer_json_option
def receive_cmd(home: Path | None, files: tuple[Path, ...], as_json: bool) -> None:
    """Apply the files that come back: bureau results and shipping data, the mailer's and the
    shipper's confirmations. Orders move to personalized (or failed), shipped, pin_mailed;
    every step goes to the audit log. Each file is taken in whole or not at all.

    Example: sealcard issuer receive inbox/*.p7m
    """
    from sealcard.parties.issuer_exchange import RETURN_KINDS

    _receive(home, files, RETURN_KINDS, as_json)


@click.command(name="results")
@home_option
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@issuer_json_option
def results_cmd(home: Path | None, files: tuple[Path, ...], as_json: bool) -> None:
    """Apply the bureau's sealed result (and shipping) files.

    Personalized cards' orders move to personalized (a later success repairs an earlier
    failure); refused ones to failed; an order never moves back from personalized. Unsigned
    or forged files are refused. Same as `issuer receive` for the bureau's files.
    """
    _receive(home, files, (FileKind.RESULTS, FileKind.SHIPPING), as_json)
