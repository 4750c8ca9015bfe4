"""Options and helpers that several `sealcard` command groups share.

Each group keeps its own help texts and output layout (scripts parse the
JSON), so the helpers here take those as arguments rather than fixing them.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Final

import click

from sealcard.card.constants import PIN_MAX_LENGTH, PIN_MIN_LENGTH, PUK_MAX_LENGTH, PUK_MIN_LENGTH
from sealcard.card.encoding import digits
from sealcard.card.errors import SecretFormatError
from sealcard.card.session import SealcardSession
from sealcard.errors import ConfigurationError
from sealcard.transport.errors import NoCardError, ReaderNotFoundError
from sealcard.transport.pcsc import PcscConnection, list_readers, readers_with_card

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

MAX_SECRET_BYTES: Final = 256

JSON_HELP_SCRIPTS: Final = "Print JSON for scripts."
JSON_HELP_ONE_OBJECT: Final = "Print one JSON object."
READER_HELP: Final = (
    "The reader: its name, a unique part of it, or its number in `sealcard readers`. "
    "May be left out when one card is present."
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


ROOT_ENV: Final = "SEALCARD_PROVIDER_ROOT"
ROOT_HELP: Final = "The card provider's root certificate (PEM or DER) to check cards against."


def root_option(help_text: str = ROOT_HELP) -> Decorator:
    """`--root FILE`: the provider root certificate, default $SEALCARD_PROVIDER_ROOT
    (parameter `root_path`; check it with `require_root` where a command needs one)."""
    return click.option(
        "--root",
        "root_path",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        envvar=ROOT_ENV,
        show_envvar=True,
        help=help_text,
    )


def require_root(root_path: Path | None) -> Path:
    """The --root given (or from $SEALCARD_PROVIDER_ROOT), else a usage error saying how."""
    if root_path is None:
        raise ConfigurationError(
            f"give the provider root certificate: --root ROOT.pem or ${ROOT_ENV}"
        )
    return root_path


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


def read_text_file(path: Path) -> str:
    """A UTF-8 input file the command line named (`--file`), or a usage error naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"{path} is not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from None


def resolve_reader(wanted: str, known: Sequence[str]) -> str:
    """The reader `wanted` means: an exact name, a number in `known` (as `sealcard readers`
    lists them), or a part of exactly one name (any case), as opensc-tool and GlobalPlatformPro
    take them. No match lists the readers; several matches name them."""
    if wanted in known:
        return wanted
    if wanted.isdigit() and int(wanted) < len(known):
        return known[int(wanted)]
    matches = [name for name in known if wanted.casefold() in name.casefold()]
    if len(matches) == 1:
        return matches[0]
    listing = "; ".join(f"{number}: {name}" for number, name in enumerate(known))
    if not known:
        raise ReaderNotFoundError(f"no reader matches {wanted!r}: no reader is attached")
    if not matches:
        raise ReaderNotFoundError(f"no reader matches {wanted!r}; the readers are {listing}")
    raise ConfigurationError(
        f"{wanted!r} matches {len(matches)} readers; give more of the name, or the number: "
        f"{listing}"
    )


def pick_reader(reader: str | None) -> str:
    """The reader named (see `resolve_reader`), or the only reader holding a card."""
    if reader is not None:
        return resolve_reader(reader, list_readers())
    with_card = readers_with_card()
    if len(with_card) == 1:
        return with_card[0]
    if not with_card:
        raise _no_card()
    raise ConfigurationError(
        f"{len(with_card)} readers hold a card; pick one with --reader (a name, a part of it "
        f"or a number): {', '.join(with_card)}"
    )


def pick_readers(readers: Sequence[str]) -> list[str]:
    """The readers named (each resolved as `resolve_reader` does), else every reader that
    holds a card; NoCardError when that is none."""
    if readers:
        known = list_readers()
        return list(dict.fromkeys(resolve_reader(reader, known) for reader in readers))
    names = readers_with_card()
    if not names:
        raise _no_card()
    return names


def _no_card() -> NoCardError:
    known = list_readers()
    hint = f" Readers: {', '.join(known)}." if known else " No reader is attached."
    return NoCardError(f"no card in any reader.{hint}")


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


def require_terminal(what: str, how: str) -> None:
    """Refuse to prompt for `what` when stdin is no terminal (a script, a pipe, cron).

    getpass would warn, read the pipe instead, or hang; the user needs to hear `how` to give
    the value instead, before anything was done.
    """
    if not sys.stdin.isatty():
        raise click.UsageError(f"no terminal to ask for the {what}: {how}")


def read_secret(fd: int | None, prompt: str, *, option: str, confirm: bool = False) -> bytes:
    """A PIN or PUK: from `fd` when given, else a hidden prompt (typed twice if `confirm`).

    `option` is the option that gives the file descriptor (named when there is no terminal).
    """
    if fd is not None:
        return _one_line(read_fd(fd, prompt)).rstrip(b"\r")
    require_terminal(prompt, f"give it on a file descriptor: {option} N (e.g. `{option} 3 3<file`)")
    value: str = click.prompt(prompt, hide_input=True, confirmation_prompt=confirm, err=True)
    return value.strip().encode("ascii", errors="replace")


def read_digits(
    fd: int | None, prompt: str, *, option: str, kind: str = "PIN", confirm: bool = False
) -> bytes:
    """A PIN (or a PUK: kind="PUK") read as `read_secret` does, checked before any card is
    touched: a usage error naming the rule and where it came from, never the value."""
    value = read_secret(fd, prompt, option=option, confirm=confirm)
    low, high = PIN_MIN_LENGTH, PIN_MAX_LENGTH
    if kind == "PUK":
        low, high = PUK_MIN_LENGTH, PUK_MAX_LENGTH
    try:
        return digits(value, kind, low, high)
    except SecretFormatError as exc:
        source = f"file descriptor {fd}" if fd is not None else "the prompt"
        hint = option if fd is not None else None
        raise click.BadParameter(f"{exc}; {source} gave something else", param_hint=hint) from None
