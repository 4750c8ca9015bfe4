"""`sealcard issuer pack`: the card stock (the sealed files are in issuer_party_cmd).

Registered on the `issuer` group by issuer_cmd.
"""

from __future__ import annotations

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
    packs come from the card provider (`issuer pack import FILE`).
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
    nothing. For a lab without a provider: a provider sends its packs as sealed
    files (`issuer pack import FILE`).
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
