"""`sealcard issuer pack`, `export` and `results`: card stock and the hand-over to the bureau.

Registered on the `issuer` group by issuer_cmd.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from sealcard.cli.common import pick_readers, readers_option, require_root, root_option
from sealcard.cli.issuer_common import (
    home_option,
    hsm_client,
    issuer_emit,
    issuer_json_option,
    open_records,
)


@click.group(name="pack")
def pack_group() -> None:
    """The stock of initialized cards, in packs used first in, first out."""


@pack_group.command(name="import-fake")
@home_option
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
@issuer_json_option
def pack_import_fake(
    home: Path | None, cards: int, pack_serial: str | None, rsa_pool: int | None, as_json: bool
) -> None:
    """DEVELOPMENT AND TESTS ONLY: add a pack of fabricated cards.

    The cards exist nowhere: their keys are made here and thrown away, so blobs sealed for
    them can never be opened. The pack is recorded with source "fake" in the audit log. Real
    packs come from the card provider (pack file import: a later issue).
    """
    from sealcard.issuer.fake import import_fake_pack

    _, records = open_records(home)
    with records.db:
        pack = import_fake_pack(records, cards, pack_serial, rsa_pool=rsa_pool)
    issuer_emit(
        as_json,
        {"pack": pack.pack_serial, "cards": len(pack.cards), "source": "fake"},
        f"fake pack {pack.pack_serial}: {len(pack.cards)} cards added (not real cards)",
    )


@pack_group.command(name="list")
@home_option
@issuer_json_option
def pack_list(home: Path | None, as_json: bool) -> None:
    """Packs, oldest (used first) to newest, with their unused verified cards."""
    _, records = open_records(home)
    with records.db:
        packs = records.packs()
    lines = [f"{p.pack_serial:24} {p.available:>8} / {p.cards:<8} {p.imported_at}" for p in packs]
    header = f"{'pack':24} {'unused':>8} / {'cards':<8} imported"
    issuer_emit(as_json, {"packs": [asdict(p) for p in packs]}, "\n".join([header, *lines]))


@pack_group.command(name="import-cards")
@home_option
@root_option("The card provider's root certificate (PEM or DER): every card must chain to it.")
@readers_option("Reader holding a card (repeat). Default: every reader holding a card.")
@click.option("--pack", "pack_serial", default=None, help="Pack serial (default: CARDS-<time>).")
@issuer_json_option
def pack_import_cards(
    home: Path | None,
    root_path: Path | None,
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
    from sealcard.transport.pcsc import PcscConnection

    root = load_root_certificate(require_root(root_path))
    names = pick_readers(readers)
    with hsm_client(home) as client:
        issuer_key = client.issuer_public_key()
    cards = []
    for name in names:
        with PcscConnection.open(name) as connection:
            data, report = check_card(SealcardSession(connection), root)
        cards.append(card_init_from_public_data(data, report, issuer_key))
    serial = pack_serial or dt.datetime.now(dt.UTC).strftime("CARDS-%Y%m%dT%H%M%S")
    _, records = open_records(home)
    with records.db:
        count = import_pack(records, serial, cards)
    payload = {"pack": serial, "cards": count, "serials": [c.serial.hex().upper() for c in cards]}
    issuer_emit(as_json, payload, f"pack {serial}: {count} genuine cards added to the stock")


# -- hand-over to the bureau and the mailer -------------------------------------------------------


@click.command(name="export")
@home_option
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
@issuer_json_option
def export_cmd(home: Path | None, blob_dir: Path, letter_dir: Path | None, as_json: bool) -> None:
    """Hand every sealed order to the bureau (blobs) and the mailer (PIN letters).

    Each blob is encrypted to its card and signed by the issuer HSM; each
    letter is encrypted to the mailer and signed. The orders move to
    sent_to_bureau; an interrupted export is simply run again.
    """
    from sealcard.issuer.handover import export_for_bureau

    _, records = open_records(home)
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
    issuer_emit(as_json, payload, text)


@click.command(name="results")
@home_option
@click.option(
    "--results",
    "results_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The bureau's result data (`sealcard bureau personalize --results FILE`).",
)
@issuer_json_option
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
        raise click.BadParameter(
            f"{results_file} is not a bureau result file ({type(exc).__name__}: {exc}); give "
            "the file `sealcard bureau personalize --results` wrote",
            param_hint="--results",
        ) from None
    _, records = open_records(home)
    with records.db:
        counts = apply_bureau_results(records, results)
    issuer_emit(
        as_json,
        counts,
        f"{counts['personalized']} personalized, {counts['failed']} failed, "
        f"{counts['unknown']} unknown serials",
    )
