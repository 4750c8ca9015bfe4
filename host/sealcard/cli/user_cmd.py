"""`sealcard user`: the user system, the customer's own computer between their card and the
issuer's HTTPS API (activation of a card, issuer commands relayed to it)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from sealcard.cli.common import (
    Decorator,
    emit,
    fd_option,
    json_option,
    open_session,
    read_digits,
    read_secret,
    reader_option,
    require_terminal,
)

PASSWORD_ENV = "SEALCARD_ISSUER_PASSWORD"  # noqa: S105 (a variable name)


def _issuer_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options: list[Decorator] = [
        click.option(
            "--issuer",
            "issuer_url",
            required=True,
            metavar="URL",
            help="The issuer's HTTPS API, e.g. https://cards.bank.example:8443",
        ),
        click.option("--login", required=True, help="Your login (from your bank's letter)."),
        fd_option(
            "--password-fd",
            f"Read the password from file descriptor N (else ${PASSWORD_ENV}, else a prompt).",
        ),
        click.option(
            "--issuer-cert",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            default=None,
            help="Trust this certificate for the issuer (its self-signed one) instead of "
            "the system's CAs.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _password(fd: int | None) -> str:
    if fd is None and os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if fd is None:
        require_terminal(
            "password",
            f"give it on a file descriptor (--password-fd N, e.g. `--password-fd 3 3<file`) "
            f"or in ${PASSWORD_ENV}",
        )
    return read_secret(fd, "Password", option="--password-fd").decode("utf-8", "replace")


@contextmanager
def _signed_in(
    issuer_url: str, login: str, password_fd: int | None, issuer_cert: Path | None
) -> Iterator[Any]:
    from sealcard.parties.issuer_api import IssuerApiClient

    with IssuerApiClient(issuer_url, issuer_cert=issuer_cert) as api:  # URL checked first
        password = _password(password_fd)
        api.sign_in(login, password)
        del password
        yield api


@click.group(name="user")
def user() -> None:
    """The user system: your card, your computer and your bank's issuer service.

    \b
      sealcard user activate --reader R --issuer https://... --login L
      sealcard user check    --reader R --issuer https://... --login L
      sealcard user reset-pin / terminate --reader R --issuer https://... --login L
    """


@user.command(name="activate")
@reader_option("Reader holding your new (initialized) card.")
@_issuer_options
@fd_option("--pin-fd", "Read the PIN you choose from file descriptor N (else a prompt).")
@fd_option("--puk-fd", "Read the PUK you choose from file descriptor N (else a prompt).")
@json_option()
def activate_cmd(
    reader: str | None,
    issuer_url: str,
    login: str,
    password_fd: int | None,
    issuer_cert: Path | None,
    pin_fd: int | None,
    puk_fd: int | None,
    as_json: bool,
) -> None:
    """Activate the card you received: sign in, let the card prove itself to your bank,
    receive the key sealed for this card and put it in.

    Your bank decides how the PIN comes: you choose PIN and PUK now (asked after the card
    took its key), or they arrive in a letter. Nothing on the card changes if anything is
    refused.
    """
    from sealcard.parties.user_system import activate_card

    # PIN and PUK on descriptors are read and checked before anything happens; a prompt
    # asks only when the issuer leaves them to the user, after the card took its key.
    pin = None if pin_fd is None else read_digits(pin_fd, "PIN", option="--pin-fd")
    puk = None if puk_fd is None else read_digits(puk_fd, "PUK", option="--puk-fd", kind="PUK")

    def choose() -> tuple[bytes, bytes]:
        if (pin is None or puk is None) and not sys.stdin.isatty():
            raise click.UsageError(
                "the card is activated and holds its key, but there is no terminal to choose "
                "its PIN and PUK: set them with `sealcard card pin set --new-pin-fd N "
                "--puk-fd N` (or give --pin-fd and --puk-fd to `user activate`)"
            )
        return (
            pin
            or read_digits(None, "Choose your PIN (4-12 digits)", option="--pin-fd", confirm=True),
            puk
            or read_digits(
                None, "Choose your PUK (8-12 digits)", option="--puk-fd", kind="PUK", confirm=True
            ),
        )

    with (
        _signed_in(issuer_url, login, password_fd, issuer_cert) as api,
        open_session(reader) as (_name, session),
    ):
        outcome = activate_card(session, api, choose)
    serial = outcome.serial.hex().upper()
    pin_text = (
        "PIN and PUK set as you chose"
        if outcome.pin == "user"
        else "your PIN and PUK come by letter"
    )
    emit(
        as_json,
        {
            "serial": serial,
            "order_id": outcome.order_id,
            "user_public_key": outcome.user_public_key,
            "pin": outcome.pin,
        },
        f"card {serial} activated (order {outcome.order_id}); {pin_text}\n"
        f"user public key {outcome.user_public_key}",
    )


def _relay(
    wanted: str,
    reader: str | None,
    issuer_url: str,
    login: str,
    password_fd: int | None,
    issuer_cert: Path | None,
    as_json: bool,
    new_pin: bytes | None = None,
) -> None:
    from sealcard.parties.user_system import relay_issuer_command

    with (
        _signed_in(issuer_url, login, password_fd, issuer_cert) as api,
        open_session(reader) as (_name, session),
    ):
        outcome = relay_issuer_command(session, api, wanted, new_pin)
    serial = outcome.serial.hex().upper()
    done = {
        None: f"card {serial}: {outcome.reason}",
        "terminate": f"card {serial}: terminated by the issuer ({outcome.reason})",
        "reset-pin": f"card {serial}: PIN reset by the issuer",
    }[outcome.command]
    emit(
        as_json,
        {
            "serial": serial,
            "command": outcome.command,
            "done": outcome.done,
            "reason": outcome.reason,
        },
        done,
    )


@user.command(name="check")
@reader_option("Reader holding your card.")
@_issuer_options
@json_option()
def check_cmd(
    reader: str | None, issuer_url: str, login: str, password_fd: int | None,
    issuer_cert: Path | None, as_json: bool,
) -> None:  # fmt: skip
    """Show your card to your bank: it proves itself and the bank says how it stands.

    A card you reported lost is terminated now (the bank's signed command, relayed here).
    """
    _relay("check", reader, issuer_url, login, password_fd, issuer_cert, as_json)


@user.command(name="reset-pin")
@reader_option("Reader holding your card.")
@_issuer_options
@fd_option("--new-pin-fd", "Read the new PIN from file descriptor N (else a prompt, twice).")
@json_option()
def reset_pin_cmd(
    reader: str | None, issuer_url: str, login: str, password_fd: int | None,
    issuer_cert: Path | None, new_pin_fd: int | None, as_json: bool,
) -> None:  # fmt: skip
    """Set a new PIN through your bank (when PIN and PUK are lost): needs the bank's
    approval first. The bank signs the command for this card; both counters are refilled."""
    new_pin = read_digits(new_pin_fd, "New PIN (4-12 digits)", option="--new-pin-fd", confirm=True)
    _relay("reset-pin", reader, issuer_url, login, password_fd, issuer_cert, as_json, new_pin)


@user.command(name="terminate")
@reader_option("Reader holding your card.")
@_issuer_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (irreversible!).")
@json_option()
def terminate_cmd(
    reader: str | None, issuer_url: str, login: str, password_fd: int | None,
    issuer_cert: Path | None, yes: bool, as_json: bool,
) -> None:  # fmt: skip
    """End this card for good (the key on it is wiped; your bank can issue a replacement
    with the same key and addresses)."""
    if not yes:
        require_terminal("confirmation", "give --yes to terminate without a question")
        click.confirm("Terminate this card for good?", abort=True, err=True)
    _relay("terminate", reader, issuer_url, login, password_fd, issuer_cert, as_json)


@user.command(name="report-lost")
@click.option("--order", "order_id", type=int, required=True, help="The order of the card.")
@_issuer_options
@json_option()
def report_lost_cmd(
    order_id: int, issuer_url: str, login: str, password_fd: int | None,
    issuer_cert: Path | None, as_json: bool,
) -> None:  # fmt: skip
    """Report your card lost or stolen (no card needed). If it turns up, `user check`
    terminates it."""
    with _signed_in(issuer_url, login, password_fd, issuer_cert) as api:
        order = api.report_lost(order_id)
    emit(as_json, {"order": order}, f"order {order_id}: card reported lost")
