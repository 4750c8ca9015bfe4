"""`sealcard bureau`: the personalization bureau's batch over its readers (step Q)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sealcard.cli.common import json_option, pick_readers, readers_option
from sealcard.cli.outcome import CliFail
from sealcard.errors import ConfigurationError

if TYPE_CHECKING:
    from sealcard.parties.bureau import CardOutcome

BLOB_SUFFIX = ".blob"


def load_blobs(blob_dir: Path) -> dict[bytes, bytes]:
    """Every `<SERIAL-HEX>.blob` in the folder, keyed by serial."""
    blobs: dict[bytes, bytes] = {}
    for path in sorted(blob_dir.glob(f"*{BLOB_SUFFIX}")):
        try:
            serial = bytes.fromhex(path.stem)
        except ValueError as exc:
            raise ConfigurationError(
                f"{path.name}: a blob file is named after its card serial in hex"
            ) from exc
        blobs[serial] = path.read_bytes()
    if not blobs:
        raise ConfigurationError(f"no *{BLOB_SUFFIX} files in {blob_dir}")
    return blobs


def outcome_json(outcome: CardOutcome) -> dict[str, object]:
    result = outcome.result
    return {
        "reader": outcome.reader,
        "serial": outcome.serial.hex().upper() if outcome.serial is not None else None,
        "personalized": outcome.personalized,
        "reason": outcome.reason,
        "seconds": round(result.seconds, 4) if result is not None else None,
        "apdus": result.traffic.apdus if result is not None else None,
    }


@click.group(name="bureau")
def bureau() -> None:
    """Personalization bureau: put each card's sealed blob on it (step Q).

    The bureau never sees a user key: each blob is encrypted to one card's
    device key and signed by the issuer; the card checks the signature first.
    """


@bureau.command(name="personalize")
@click.option(
    "--blob-dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of sealed blobs, one per card, named <SERIAL-HEX>.blob.",
)
@readers_option("Reader to use (repeat for several). Default: every reader holding a card.")
@click.option(
    "--results",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the result data (per serial: personalized or failed, and why) as JSON here.",
)
@click.option(
    "--extended/--chained",
    default=False,
    show_default=True,
    help="One extended-length APDU per blob, or short chained APDUs.",
)
@json_option()
def personalize(
    blob_dir: Path, readers: tuple[str, ...], results: Path | None, extended: bool, as_json: bool
) -> None:
    """Match every card in the readers to its blob by serial and personalize it.

    A card without a blob, not INITIALIZED, or refusing its blob is reported
    as failed and left unchanged; the others go on. Exit code 1 when any card
    failed.

    \b
    Example:
      sealcard bureau personalize --blob-dir from-issuer/ --results results.json
    """
    from sealcard.parties.bureau import personalize_readers

    blobs = load_blobs(blob_dir)
    names = pick_readers(readers)

    def show(outcome: CardOutcome) -> None:
        if as_json:
            return
        serial = outcome.serial.hex().upper() if outcome.serial is not None else "?"
        mark = "ok  " if outcome.personalized else "FAIL"
        click.echo(f"{mark} {serial:<20} {outcome.reader}: {outcome.reason}", err=True)
    outcomes = personalize_readers(names, blobs, extended=extended, on_card=show)
    report = {
        "ok": all(o.personalized for o in outcomes),
        "personalized": sum(o.personalized for o in outcomes),
        "failed": sum(not o.personalized for o in outcomes),
        "cards": [outcome_json(o) for o in outcomes],
    }
    if results is not None:
        results.write_text(json.dumps(report, indent=2) + "\n")
    summary = f"{report['personalized']} personalized, {report['failed']} failed"
    if not report["ok"]:
        payload = {key: value for key, value in report.items() if key != "ok"}
        raise CliFail(f"{summary} (see each card's reason)", kind="CardsFailed", payload=payload)
    if as_json:
        click.echo(json.dumps(report))
    else:
        click.echo(summary)
