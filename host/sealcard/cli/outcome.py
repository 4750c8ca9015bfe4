"""How a `sealcard` command ends: exit codes, the one error line, and the JSON a script reads.

Every command ends through `finish` (docs/cli.md, "Exit codes" and "--json"):

- success: exit 0; with --json, one JSON object `{"ok": true, ...}` on stdout;
- failure: a non-zero exit code, exactly one line `error: ...` on stderr and, with --json,
  one JSON object `{"ok": false, "error": KIND, "message": ..., "exit_code": N, ...}` on
  stdout. This holds for usage errors (bad option, missing file) too.

A command reports a failure by raising: `CliFail` for an outcome it decided itself (a card
that is not genuine, a wrong PIN), a `click.UsageError` for a bad command line, or any
`SealcardError` from the layers below; `exit_code_for` maps those to a code by type.
Only the CLI prints or picks an exit code (docs/architecture.md).
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from enum import IntEnum
from typing import IO, Any, Final

import click

from sealcard.errors import ConfigurationError, SealcardError, UnavailableError


class ExitCode(IntEnum):
    """The exit codes of every `sealcard` command (docs/cli.md)."""

    OK = 0
    REFUSED = 1
    """The command ran and the answer is no: not genuine, wrong PIN, the card or the issuer
    HSM refused, a card of a batch failed."""
    USAGE = 2
    """The command line, or a file, folder or setting it names, is wrong: unknown option, bad
    value, missing or malformed file, a folder that cannot be written."""
    UNAVAILABLE = 3
    """Something the command needs is not there or does not answer: pcscd, the reader, a card,
    the sealcard applet, the issuer HSM service, the database, the simulator. Retry later."""
    INTERNAL = 4
    """A bug: an exception nobody expected. `sealcard --debug ...` shows the traceback."""
    INTERRUPTED = 130
    """Ctrl-C, or a question that was not answered (128 + SIGINT, as shells do)."""


_BY_TYPE: Final[dict[type[BaseException], ExitCode]] = {
    click.UsageError: ExitCode.USAGE,
    ConfigurationError: ExitCode.USAGE,
    UnavailableError: ExitCode.UNAVAILABLE,
    SealcardError: ExitCode.REFUSED,
    click.exceptions.Abort: ExitCode.INTERRUPTED,
    KeyboardInterrupt: ExitCode.INTERRUPTED,
    OSError: ExitCode.USAGE,
}
"""Exception class -> exit code; the most specific class in an exception's MRO wins."""


class CliFail(click.ClickException):
    """A failure a command decides itself: its one-line message, exit code and JSON extras.

    `kind` is the stable name scripts read in the JSON's "error"; `payload` is merged into
    the JSON (e.g. the whole attestation report of a card that is not genuine).
    """

    def __init__(
        self,
        message: str,
        *,
        code: ExitCode = ExitCode.REFUSED,
        kind: str = "Refused",
        payload: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.exit_code = int(code)
        self.kind = kind
        self.payload = dict(payload or {})

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {one_line(self.message)}", err=True)


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code for an exception, by the most specific class `_BY_TYPE` names."""
    if isinstance(exc, CliFail):
        return ExitCode(exc.exit_code)
    for cls in type(exc).__mro__:
        code = _BY_TYPE.get(cls)
        if code is not None:
            return code
    return ExitCode.INTERNAL


def one_line(text: str) -> str:
    """`text` on one line (a multi-line library message joined with '; ')."""
    parts = [part.strip() for part in str(text).splitlines() if part.strip()]
    return "; ".join(parts) or "failed"


def message_for(exc: BaseException) -> str:
    """The one-line message a person reads for `exc` (without the 'error: ' prefix)."""
    if isinstance(exc, click.UsageError):
        message = exc.format_message()
        if exc.ctx is not None:
            message += f" (see '{exc.ctx.command_path} --help')"
        return one_line(message)
    if isinstance(exc, click.ClickException):
        return one_line(exc.format_message())
    if isinstance(exc, click.exceptions.Abort | KeyboardInterrupt):
        return "aborted"
    if isinstance(exc, SealcardError):
        return one_line(str(exc))
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return one_line(f"{where}{exc.strerror or exc}")
    return one_line(
        f"internal error ({type(exc).__name__}: {exc}); this is a bug: run the command again "
        "as `sealcard --debug ...` for the traceback and report it"
    )


def kind_for(exc: BaseException) -> str:
    """The stable name of a failure in the JSON's "error"."""
    if isinstance(exc, CliFail):
        return exc.kind
    if isinstance(exc, click.UsageError):
        return "UsageError"
    if isinstance(exc, click.exceptions.Abort | KeyboardInterrupt):
        return "Aborted"
    if isinstance(exc, SealcardError):
        return type(exc).__name__
    if isinstance(exc, OSError):
        return "OSError"
    return "InternalError"


def report_failure(exc: BaseException, *, as_json: bool) -> ExitCode:
    """Print one failure (stderr line, and JSON on stdout when asked); return its exit code."""
    code = exit_code_for(exc)
    message = message_for(exc)
    if code == ExitCode.INTERNAL and logging.getLogger("sealcard").isEnabledFor(logging.DEBUG):
        traceback.print_exception(exc, file=sys.stderr)
    if as_json:
        payload = exc.payload if isinstance(exc, CliFail) else {}
        document = {
            **payload,
            "ok": False,
            "error": kind_for(exc),
            "message": message,
            "exit_code": int(code),
        }
        click.echo(json.dumps(document))
    click.echo(f"error: {message}", err=True)
    return code


def wants_json(args: list[str]) -> bool:
    """Whether the command line asks for JSON (also read when it does not parse)."""
    return "--json" in args
