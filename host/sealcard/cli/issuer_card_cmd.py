"""`sealcard issuer card`: commands the issuer signs for one card it issued (claim 14).

Registered on the `issuer` group by issuer_cmd.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from sealcard.cli.common import (
    fd_option,
    open_session,
    read_digits,
    reader_option,
    require_terminal,
)
from sealcard.cli.issuer_common import home_option, issuer_emit, issuer_json_option, open_records


@contextmanager
def _card_admin(home: Path | None, reader: str | None) -> Iterator[tuple[Any, Any, Any]]:
    """(session, records, device-auth key signer) for an issuer command to the card in `reader`."""
    from sealcard.hsm.config import load_settings
    from sealcard.hsm.system_hsm import DeviceAuthKeys
    from sealcard.hsm.token import Token

    issuer_home, records = open_records(home)
    settings = load_settings(issuer_home.root, issuer_home.raw_config())
    from sealcard.parties import issuer_audit

    token = Token.open(settings.system)
    try:
        with records.db, open_session(reader) as (_, session):
            yield session, records, DeviceAuthKeys(token)
            issuer_audit.checkpoint_in_token(records, token)  # the command's entry, signed
    finally:
        token.close()


@click.group(name="card")
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
@home_option
@issuer_json_option
def card_reset_pin(
    reader: str | None, new_pin_fd: int | None, home: Path | None, as_json: bool
) -> None:
    """Issuer-assisted PIN reset: set a new PIN and fill both retry counters.

    For a user who lost PIN and PUK: the card obeys only a command signed with
    its own device authentication key over its fresh challenge.
    """
    from sealcard.parties.issuer_admin import reset_pin

    new_pin = read_digits(new_pin_fd, "new PIN", option="--new-pin-fd", confirm=True)
    with _card_admin(home, reader) as (session, records, keys):
        reset_pin(session, records, keys, new_pin)
        serial = session.serial.hex().upper()
    issuer_emit(
        as_json, {"serial": serial, "pin_reset": True}, f"card {serial}: PIN reset by the issuer"
    )


@card_group.command(name="terminate")
@reader_option("Reader holding the card.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (irreversible!).")
@home_option
@issuer_json_option
def card_terminate(reader: str | None, yes: bool, home: Path | None, as_json: bool) -> None:
    """Terminate a card for good: the card wipes the user key and refuses all use.

    Irreversible. The user's funds stay reachable through the user key's
    derivation in the issuer HSM (a new card for the same derivation element is
    a policy decision, not a command).
    """
    from sealcard.parties.issuer_admin import terminate

    if not yes:
        require_terminal("confirmation", "give --yes to terminate without a question")
        click.confirm("Terminate this card for good?", abort=True, err=True)
    with _card_admin(home, reader) as (session, records, keys):
        terminate(session, records, keys)
        serial = session.serial.hex().upper()
    issuer_emit(as_json, {"serial": serial, "terminated": True}, f"card {serial}: terminated")
