"""`sealcard bureau`: the personalization bureau (step Q), from the issuer's sealed batch files."""

from __future__ import annotations

from pathlib import Path

import click

from sealcard.cli.common import emit, extended_option, json_option, pick_readers, readers_option
from sealcard.cli.outcome import CliFail
from sealcard.cli.party_cmd import (
    home_option_for,
    make_keys_group,
    make_party_group,
    output_folder,
    party_file_option,
    party_out_dir_option,
)
from sealcard.formats.roles import Role


@click.group(name="bureau")
def bureau() -> None:
    """Personalization bureau: put each card's sealed blob on it (step Q).

    The bureau never sees a user key: each blob is encrypted to one card's device key and
    signed by the issuer; the card checks the signature first.

    \b
    Once:      sealcard bureau keys init --name print-house --out bureau.pem
               sealcard bureau party add --role issuer --cert issuer.pem
    Per batch: sealcard bureau personalize --file personalization-B1.p7m
    """


bureau.add_command(make_keys_group(Role.BUREAU, (Role.ISSUER, Role.MAILER, Role.SHIPPER)))
bureau.add_command(make_party_group(Role.BUREAU, (Role.ISSUER, Role.MAILER, Role.SHIPPER)))


@bureau.command(name="personalize")
@home_option_for(Role.BUREAU)
@party_file_option("The personalization file of one batch, from the issuer (`issuer export`).")
@readers_option(
    "A reader to use: its name, a unique part of it, or its number (repeat). Default: every "
    "reader holding a card, all at once."
)
@click.option(
    "--pin-source",
    type=click.Choice(["hsm", "bureau"]),
    default="hsm",
    show_default=True,
    help="Who makes PIN and PUK. hsm: they come in the blob (FIG. 5); bureau: the bureau makes"
    " them (CSPRNG), puts them on the card and writes the PIN letters for the mailer (FIG. 2).",
)
@click.option(
    "--shipper",
    default=None,
    metavar="NAME",
    help="The registered shipper the shipping data goes to (default: the only one).",
)
@party_out_dir_option()
@extended_option()
@json_option()
def personalize(
    home: Path | None,
    party_file: Path,
    readers: tuple[str, ...],
    pin_source: str,
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
    --pin-source bureau, the PIN letters for the mailer (pin-letters-BATCH-MAILER.p7m).
    Every output path is checked before the first card is touched.

    Safe to run again (more cards, or after an interruption): it resumes with what is left
    and writes the outputs anew with every card so far. Exit code 1 when a card failed in
    this run (its reason is in the result data, and in the JSON).

    \b
    Example:
      sealcard bureau personalize --file personalization-B1.p7m
      sealcard bureau personalize --file personalization-B2.p7m --pin-source bureau -r 0 -r 1
    """
    from sealcard.parties.bureau_batch import CardOutcome, personalize_batch
    from sealcard.parties.party_home import load_home, open_party

    target = out_dir or load_home(Role.BUREAU, home).root / "outbox"

    def show(outcome: CardOutcome) -> None:
        if as_json:
            return
        serial = outcome.serial.hex().upper() if outcome.serial is not None else "?"
        click.echo(f"{outcome.outcome:21} {serial:18} {outcome.reader}: {outcome.reason}", err=True)

    with output_folder(target), open_party(Role.BUREAU, home) as party:
        names = pick_readers(readers)
        report = personalize_batch(
            party,
            party_file,
            names,
            target,
            pins=pin_source,
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
    summary = f"batch {report.batch}: {done} of {report.cards} cards personalized"
    if totals.get("not_reached"):
        summary += f", {totals['not_reached']} not reached yet"
    if failed:
        raise CliFail(
            f"{summary}; {len(failed)} card(s) failed in this run (each card's reason is above"
            f" and in the result data); the files for the issuer are in {target}",
            kind="CardsFailed",
            payload=payload,
        )
    emit(as_json, payload, "\n".join([summary, *(f"  {p}" for p in report.files.values())]))
