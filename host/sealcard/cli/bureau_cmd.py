"""`sealcard bureau`: the personalization bureau (step Q), from the issuer's sealed batch files."""

from __future__ import annotations

from pathlib import Path

import click

from sealcard.cli.common import extended_option, json_option, readers_option
from sealcard.cli.party_cmd import (
    finish,
    home_option_for,
    make_keys_group,
    make_party_group,
    pick_readers,
    readers_count_option,
)
from sealcard.formats.party_csv import Role


@click.group(name="bureau")
def bureau() -> None:
    """Personalization bureau: put each card's sealed blob on it (step Q).

    The bureau never sees a user key: each blob is encrypted to one card's device key and
    signed by the issuer; the card checks the signature first.

    \b
    Once:      sealcard bureau keys init --name print-house --out bureau.pem
               sealcard bureau party add --role issuer --cert issuer.pem
    Per batch: sealcard bureau personalize personalization-B1.p7m --readers all
    """


bureau.add_command(make_keys_group(Role.BUREAU, (Role.ISSUER, Role.MAILER, Role.SHIPPER)))
bureau.add_command(make_party_group(Role.BUREAU, (Role.ISSUER, Role.MAILER, Role.SHIPPER)))


@bureau.command(name="personalize")
@home_option_for(Role.BUREAU)
@click.argument("batch_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@readers_count_option()
@readers_option("Only this reader (repeat). Default: every reader holding a card.")
@click.option(
    "--pins",
    type=click.Choice(["hsm", "bureau"]),
    default="hsm",
    show_default=True,
    help="hsm: PIN and PUK come in the blob (FIG. 5); bureau: the bureau makes them (CSPRNG),"
    " puts them on the card and writes the PIN letters for the mailer (FIG. 2).",
)
@click.option("--shipper", default=None, help="The registered shipper for the shipping data.")
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the outputs go (default: HOME/outbox).",
)
@extended_option()
@json_option()
def personalize(
    home: Path | None,
    batch_file: Path,
    readers_mode: str,
    readers: tuple[str, ...],
    pins: str,
    shipper: str | None,
    out_dir: Path | None,
    extended: bool,
    as_json: bool,
) -> None:
    """Personalize every card of a batch file that sits in a reader, all readers at once.

    Checks the file first (sealed to this bureau, signed by the registered issuer), matches
    each card to its row by serial, then writes for the issuer the result data
    (results-BATCH.p7m) and the shipping data (shipping-BATCH.p7m, also for the shipper),
    the card-face print sheet (print-sheet-BATCH.pdf, in personalization order) and, with
    --pins bureau, the PIN letters for the mailer (pin-letters-BATCH-MAILER.p7m). Every
    output path is checked before the first card is touched.

    Safe to run again (more cards, or after an interruption): it resumes with what is left
    and writes the outputs anew with every card so far. Exit code 1 when a card failed.

    \b
    Example:
      sealcard bureau personalize personalization-B1.p7m --readers all
    """
    from sealcard.parties.bureau_batch import CardOutcome, personalize_batch
    from sealcard.parties.party_home import open_party

    names = pick_readers(readers_mode, readers)

    def show(outcome: CardOutcome) -> None:
        if as_json:
            return
        serial = outcome.serial.hex().upper() if outcome.serial is not None else "?"
        click.echo(f"{outcome.outcome:21} {serial:18} {outcome.reader}: {outcome.reason}", err=True)

    with open_party(Role.BUREAU, home) as party:
        target = out_dir or party.home.root / "outbox"
        report = personalize_batch(
            party,
            batch_file,
            names,
            target,
            pins=pins,
            shipper=shipper,
            extended=extended,
            on_card=show,
        )
    failed = [o for o in report.outcomes if o.outcome in ("refused", "failed")]
    totals = report.totals
    payload = {
        "batch": report.batch,
        "resumed": report.resumed,
        "cards": report.cards,
        "totals": totals,
        "files": {k: str(v) for k, v in report.files.items()},
        "readers": [
            {
                "reader": o.reader,
                "serial": o.serial.hex().upper() if o.serial is not None else None,
                "outcome": o.outcome,
                "reason": o.reason,
                "seconds": round(o.seconds, 3),
            }
            for o in report.outcomes
        ],
    }
    done = totals.get("personalized", 0) + totals.get("already_personalized", 0)
    text = "\n".join(
        [
            f"batch {report.batch}: {done} of {report.cards} cards personalized"
            + (
                f", {totals.get('not_reached', 0)} not reached yet"
                if totals.get("not_reached")
                else ""
            )
        ]
        + [f"  {path}" for path in report.files.values()]
    )
    finish(as_json, not failed, payload, text, f"{len(failed)} card(s) failed in this run")
