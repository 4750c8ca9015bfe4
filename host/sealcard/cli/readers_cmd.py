"""`sealcard readers`: every PC/SC reader, with the sealcard card in it if any."""

from __future__ import annotations

import json
from typing import Any

import click

from sealcard.card.errors import NotSealcardError
from sealcard.card.session import SealcardSession
from sealcard.cli.card_cmd import status_json
from sealcard.cli.common import json_option
from sealcard.errors import SealcardError
from sealcard.transport.errors import ReaderBusyError
from sealcard.transport.pcsc import PcscConnection, list_readers, reader_has_card


def describe(reader: str, index: int = 0) -> dict[str, Any]:
    """One reader: its number, card present? a sealcard card? its serial and state."""
    entry: dict[str, Any] = {"index": index, "reader": reader, "card": False, "sealcard": False}
    try:
        if not reader_has_card(reader):
            return entry
        entry["card"] = True
        with PcscConnection.open(reader) as connection:
            entry["atr"] = connection.atr.hex().upper()
            session = SealcardSession(connection)
        entry["sealcard"] = True
        entry.update(status_json(session.status))
    except NotSealcardError:
        entry["note"] = "not a sealcard card"
    except ReaderBusyError:
        entry["note"] = "card in use by another program"
    except SealcardError as exc:
        entry["error"] = str(exc)
    return entry


@click.command(name="readers")
@json_option()
def readers(as_json: bool) -> None:
    """List every reader, card present or not, with the card's serial and state.

    A card without the sealcard applet is shown as such. The other commands
    take a reader with --reader/-r: its name, a unique part of it, or the
    number shown here.
    """
    entries = [describe(name, index) for index, name in enumerate(list_readers())]
    if as_json:
        click.echo(json.dumps({"ok": True, "readers": entries}, indent=2))
        return
    if not entries:
        click.echo("no readers attached")
        return
    for e in entries:
        if not e["card"]:
            what = "no card"
        elif e["sealcard"]:
            what = f"sealcard  serial {e['serial'] or '(not set)'}  state {e['state']}"
        else:
            what = e.get("note") or f"error: {e.get('error')}"
        click.echo(f"{e['index']}: {e['reader']}: {what}")
