"""`sealcard issuer keys`, `issuer party`, `issuer pack import`, `issuer export`,
`issuer receive` and `issuer results`: the issuer's sealed files (registered on `issuer`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sealcard.cli.issuer_common import home_option, hsm_client, issuer_emit, issuer_json_option
from sealcard.cli.outcome import CliFail, exit_code_for, kind_for
from sealcard.cli.party_cmd import (
    bundle_json,
    certificate_file_out_option,
    certificate_out,
    output_folder,
    party_file_option,
    party_name_option,
    peer_certificate_option,
    peer_role_option,
)
from sealcard.formats.roles import Role

if TYPE_CHECKING:
    from sealcard.formats.party_csv import FileKind
    from sealcard.parties.issuer_exchange import BatchFiles

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

    certificate_out(out)
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
@certificate_file_out_option()
@issuer_json_option
def keys_export(home: Path | None, out: Path, as_json: bool) -> None:
    """Write the issuer's certificate file (for the other parties' `party add`)."""
    from sealcard.issuer.config import load_home
    from sealcard.parties.issuer_exchange import issuer_bundle

    certificate_out(out)
    bundle = issuer_bundle(load_home(home))
    out.write_bytes(bundle.pem())
    issuer_emit(as_json, {"out": str(out), **bundle_json(bundle)}, f"certificate file {out}")


@click.group(name="party")
def party_group() -> None:
    """The parties the issuer exchanges sealed files with."""


@party_group.command(name="add")
@home_option
@peer_role_option(PEER_ROLES, "role")
@peer_certificate_option("The certificate file the party handed over (from its `keys init`).")
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
@party_file_option("The provider's pack file (`provider init-pack`).")
@issuer_json_option
def pack_import(home: Path | None, party_file: Path, as_json: bool) -> None:
    """Take a provider's pack file (device initialization data) into stock.

    Checks that the file is addressed to this issuer, signed by a registered provider, not
    imported before; every card's attestation against that provider's root; that no serial
    is already in stock. All cards or none; the pack is used first in, first out.

    Example: sealcard issuer pack import --file device-init-PACK-1.p7m
    """
    from sealcard.parties.issuer_exchange import import_pack_file, open_issuer

    with open_issuer(home) as issuer:
        report = import_pack_file(issuer, party_file)
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


def _batch_json(batch: BatchFiles) -> dict[str, Any]:
    return {
        "batch": batch.batch,
        "orders": batch.orders,
        "personalization": None if batch.personalization is None else str(batch.personalization),
        "letters": {m: str(p) for m, p in batch.letters.items()},
    }


@click.command(name="export")
@home_option
@click.option(
    "--bureau",
    "bureau",
    default=None,
    metavar="NAME",
    help="The registered bureau the batches go to (default: the only one).",
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the files go (default: HOME/outbox): personalization-BATCH.p7m for the bureau,"
    " pin-letters-BATCH-MAILER.p7m for each mailer.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1_000_000),
    default=1000,
    show_default=True,
    help="Orders per batch (one personalization file each).",
)
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

    Orders of the activation channel never go to the bureau (their blob goes to the
    customer's computer); once their card took it, their PIN letters go to the mailers here,
    in files of their own (pin-letters-A...-MAILER.p7m), each letter once.

    Each personalization file lists, per card: position, serial, sealed blob, whether the
    PIN comes in the blob or from the bureau, the mailer, the name for the card face and
    the shipping address. Safe to interrupt: run it again and it writes the batches it had
    started anew before taking new orders.

    Example: sealcard issuer export --bureau print-house --out-dir outbox/
    """
    from sealcard.issuer.config import load_home
    from sealcard.parties.issuer_exchange import export_batches, open_issuer

    target = out_dir or load_home(home).root / "outbox"
    with output_folder(target), open_issuer(home) as issuer:
        report = export_batches(issuer, bureau, target, batch_size=batch_size, limit=limit)
    payload = {
        "bureau": report.bureau,
        "orders": report.orders,
        "batches": [_batch_json(b) for b in report.batches],
        "letters_after_activation": report.letters_after_activation,
        "activation_letter_batches": [_batch_json(b) for b in report.activation_letters],
    }
    lines = [
        f"{report.orders} orders in {len(report.batches)} batch(es) for bureau {report.bureau}"
    ]
    for b in report.batches:
        lines.append(f"  {b.personalization}")
        lines.extend(f"  {p}" for p in b.letters.values())
    if report.activation_letters:
        lines.append(
            f"{report.letters_after_activation} PIN letter(s) of cards activated on the"
            " customer's computer, for the mailers"
        )
        for b in report.activation_letters:
            lines.extend(f"  {p}" for p in b.letters.values())
    issuer_emit(as_json, payload, "\n".join(lines))


def _receive(
    home: Path | None, files: tuple[Path, ...], kinds: tuple[FileKind, ...], as_json: bool
) -> None:
    """Apply each file whole or not at all; the others still go in when one is refused."""
    from sealcard.errors import SealcardError
    from sealcard.parties.issuer_exchange import open_issuer, receive_file, waits_for_results

    applied: list[dict[str, Any]] = []
    refused: list[tuple[Path, SealcardError]] = []
    pending = list(dict.fromkeys(files))
    with open_issuer(home) as issuer:
        # a shipping step given before its batch's results goes in once they did: the order
        # of the --file options does not matter
        while pending:
            waiting: list[tuple[Path, SealcardError]] = []
            taken_before = len(applied)
            for path in pending:
                try:
                    report = receive_file(issuer, path, kinds)
                except SealcardError as exc:
                    (waiting if waits_for_results(exc) else refused).append((path, exc))
                    continue
                applied.append({"file": str(path), **report.__dict__})
            if len(applied) == taken_before:  # nothing went in: nothing will change
                refused += waiting
                break
            pending = [path for path, _ in waiting]
    text = "\n".join(
        f"{a['file']}: {a['kind']} {a['batch']} from {a['sender']}: "
        + (", ".join(f"{k} {v}" for k, v in sorted(a["counts"].items())) or "nothing to change")
        for a in applied
    )
    if not refused:
        issuer_emit(as_json, {"applied": applied, "refused": []}, text)
        return
    if len(files) == 1:
        raise refused[0][1]  # one file: its own error, exit code and name
    if not as_json:
        if text:
            click.echo(text)
        for path, error in refused:
            click.echo(f"refused {path}: {error}", err=True)
    first_path, first = refused[0]
    raise CliFail(
        f"{len(refused)} of {len(files)} files refused, nothing of them taken in (the first:"
        f" {first_path}: {first}); the {len(applied)} other(s) were applied",
        code=exit_code_for(first),
        kind="FilesRefused",
        payload={
            "applied": applied,
            "refused": [
                {"file": str(p), "error": kind_for(e), "reason": str(e)} for p, e in refused
            ],
        },
    )


@click.command(name="receive")
@home_option
@click.option(
    "--file",
    "files",
    multiple=True,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file that came back (repeat): the bureau's results or shipping data, the"
    " mailer's or the shipper's confirmation.",
)
@issuer_json_option
def receive_cmd(home: Path | None, files: tuple[Path, ...], as_json: bool) -> None:
    """Apply the files that come back: bureau results and shipping data, the mailer's and the
    shipper's confirmations. Orders move to personalized (or failed), shipped, pin_mailed;
    every step goes to the audit log. Each file is taken in whole or not at all; when one is
    refused the others still go in, and the exit code is not 0.

    Example: sealcard issuer receive --file inbox/results-B1.p7m --file inbox/shipping-B1.p7m
    """
    from sealcard.parties.issuer_exchange import RETURN_KINDS

    _receive(home, files, RETURN_KINDS, as_json)


@click.command(name="results")
@home_option
@click.option(
    "--results",
    "files",
    multiple=True,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The bureau's result data, results-BATCH.p7m (`bureau personalize`), or its shipping"
    " data (repeat).",
)
@issuer_json_option
def results_cmd(home: Path | None, files: tuple[Path, ...], as_json: bool) -> None:
    """Apply the bureau's sealed result (and shipping) files.

    Personalized cards' orders move to personalized (a later success repairs an earlier
    failure); refused ones to failed; an order never moves back from personalized. Unsigned
    or forged files are refused. Same as `issuer receive` for the bureau's files.

    Example: sealcard issuer results --results inbox/results-B1.p7m
    """
    from sealcard.formats.party_csv import FileKind

    _receive(home, files, (FileKind.RESULTS, FileKind.SHIPPING), as_json)
