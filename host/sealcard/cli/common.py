"""Options and helpers that several `sealcard` command groups share.

Each group keeps its own help texts and output layout (scripts parse the
JSON), so the helpers here take those as arguments rather than fixing them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, Final

import click

from sealcard.card.session import SealcardSession
from sealcard.errors import ConfigurationError
from sealcard.transport.pcsc import PcscConnection, list_readers, readers_with_card

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

MAX_SECRET_BYTES: Final = 256

JSON_HELP_SCRIPTS: Final = "Print JSON for scripts."
JSON_HELP_ONE_OBJECT: Final = "Print one JSON object."
READER_HELP: Final = (
    "PC/SC reader name (see `sealcard readers`). May be left out when one card is present."
)


def json_option(help_text: str = JSON_HELP_SCRIPTS) -> Decorator:
    """The `--json` flag (parameter `as_json`)."""
    return click.option("--json", "as_json", is_flag=True, help=help_text)


def reader_option(help_text: str = READER_HELP) -> Decorator:
    """`--reader/-r NAME`: one reader (parameter `reader`)."""
    return click.option("--reader", "-r", metavar="NAME", help=help_text)


def extended_option() -> Decorator:
    """`--extended/--chained`: how long data goes to the card (parameter `extended`)."""
    return click.option(
        "--extended/--chained",
        default=False,
        show_default=True,
        help="Send long data as one extended-length APDU, or as short chained APDUs "
        "(works with every reader).",
    )


def readers_option(help_text: str) -> Decorator:
    """`--reader/-r NAME`, repeatable (parameter `readers`, a tuple)."""
    return click.option("--reader", "-r", "readers", multiple=True, metavar="NAME", help=help_text)


def fd_option(name: str, help_text: str) -> Decorator:
    """`--X-fd N`: a secret read from a file descriptor the caller opened."""
    return click.option(name, type=click.IntRange(min=0), metavar="N", help=help_text)


def emit(
    as_json: bool,
    payload: dict[str, Any],
    text: str,
    *,
    indent: int | None = None,
    sort_keys: bool = False,
) -> None:
    """A success: `{"ok": true, **payload}` as JSON, or `text` for a person."""
    if as_json:
        click.echo(json.dumps({"ok": True, **payload}, indent=indent, sort_keys=sort_keys))
    else:
        click.echo(text)


def emit_error(message: str, *, as_json: bool, kind: str, **extra: Any) -> None:
    """A failure for a person (`error: ...` on stderr) or a script (JSON on stdout)."""
    if as_json:
        click.echo(json.dumps({"ok": False, "error": kind, "message": message, **extra}))
    else:
        click.echo(f"error: {message}", err=True)


def pick_reader(reader: str | None) -> str:
    """The reader named, or the only reader holding a card."""
    if reader is not None:
        return reader
    with_card = readers_with_card()
    if len(with_card) == 1:
        return with_card[0]
    if not with_card:
        known = list_readers()
        hint = f" Readers: {', '.join(known)}." if known else " No reader is attached."
        raise ConfigurationError(f"no card in any reader.{hint}")
    raise ConfigurationError(
        f"{len(with_card)} readers hold a card; pick one with --reader: {', '.join(with_card)}"
    )


@contextmanager
def open_session(
    reader: str | None, *, extended: bool = False, exclusive: bool = True
) -> Iterator[tuple[str, SealcardSession]]:
    """Connect to the card in `reader` (or the only card), select sealcard, yield the session."""
    name = pick_reader(reader)
    with PcscConnection.open(name, exclusive=exclusive) as connection:
        yield name, SealcardSession(connection, extended=extended)


def read_fd(fd: int, what: str) -> bytes:
    """Everything readable from file descriptor `fd` (up to EOF); the descriptor is closed."""
    chunks: list[bytes] = []
    total = 0
    try:
        while True:
            chunk = os.read(fd, MAX_SECRET_BYTES)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > MAX_SECRET_BYTES:
                raise ConfigurationError(f"{what} on fd {fd} is longer than {MAX_SECRET_BYTES}")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {what} from fd {fd}: {exc.strerror}") from exc
    finally:
        with suppress(OSError):
            os.close(fd)
    return b"".join(chunks)


def _one_line(raw: bytes) -> bytes:
    return raw[:-1] if raw.endswith(b"\n") else raw


def read_secret(fd: int | None, prompt: str, *, confirm: bool = False) -> bytes:
    """A PIN or PUK: from `fd` when given, else a hidden prompt (typed twice if `confirm`)."""
    if fd is not None:
        return _one_line(read_fd(fd, prompt)).rstrip(b"\r")
    value: str = click.prompt(prompt, hide_input=True, confirmation_prompt=confirm, err=True)
    return value.strip().encode("ascii", errors="replace")
