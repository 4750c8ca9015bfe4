"""The `sealcard` command: one group per party, and the one exit path every command ends on."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any, Final

import click

from sealcard import __version__
from sealcard.cli.lazy import LazyCommand, LazyGroup
from sealcard.cli.outcome import ExitCode, report_failure, wants_json

DEBUG_ENV: Final = "SEALCARD_DEBUG"
DEBUG_FLAGS: Final = ("--debug", "-v")
DEBUG_WARNING: Final = (
    "warning: debug log on: APDU headers and status words go to stderr (never data, PINs or "
    "keys); turn it off for normal use"
)

_NO_ARGS_IS_HELP: Final[Any] = getattr(click.exceptions, "NoArgsIsHelpError", ())
"""click 8.2+ raises it for a group called without a command (8.1 exits 0 itself)."""


GROUPS: Final = {
    # One line per command group: name, where it is defined, and the first sentence of its
    # docstring (what `sealcard --help` lists). A group's module is imported only when that
    # group is used; a command added to an existing group needs no line here.
    "bureau": LazyCommand(
        "sealcard.cli.bureau_cmd:bureau",
        "Personalization bureau: put each card's sealed blob on it (step Q).",
    ),
    "card": LazyCommand(
        "sealcard.cli.card_cmd:card", "Talk to one card: its public data, attestation and use."
    ),
    "doctor": LazyCommand(
        "sealcard.cli.doctor_cmd:doctor",
        "Check this machine for the job at hand; say what is missing and how to fix it.",
    ),
    "issuer": LazyCommand(
        "sealcard.cli.issuer_cmd:issuer",
        "Issuer system and issuer HSMs: users, orders, card stock, sealing.",
    ),
    "mailer": LazyCommand(
        "sealcard.cli.mailer_cmd:mailer",
        "Mailing system: open the PIN letters, print them, confirm to the issuer.",
    ),
    "provider": LazyCommand(
        "sealcard.cli.provider_cmd:provider",
        "Card provider: root CA and card initialization (step A).",
    ),
    "readers": LazyCommand(
        "sealcard.cli.readers_cmd:readers",
        "List every reader, card present or not, with the card's serial and state.",
    ),
    "shipper": LazyCommand(
        "sealcard.cli.shipper_cmd:shipper",
        "Shipping system: the bureau's shipping data in, a manifest and a confirmation out.",
    ),
    "sim": LazyCommand(
        "sealcard.cli.sim_cmd:sim",
        "Simulated sealcard cards that look to every PC/SC program like cards in real readers.",
    ),
    "user": LazyCommand(
        "sealcard.cli.user_cmd:user",
        "The user system: your card, your computer and your bank's issuer service.",
    ),
}
"""The root's sub-commands, imported when used (cli/lazy.py; docs/architecture.md)."""


class SealcardGroup(LazyGroup):
    """The root group: runs a command and turns however it ends into one exit code.

    click's own `main` drops the exit code of `click.exceptions.Exit` when it is not in
    standalone mode, and prints usage errors on three lines; this `main` keeps the code,
    prints every failure as one `error:` line (plus the JSON of docs/cli.md with --json) and
    exits once. The installed `sealcard` executable and click's test runner both come here.
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = _debug_first(list(sys.argv[1:] if args is None else args))
        try:
            returned = super().main(
                argv,
                prog_name=prog_name or "sealcard",
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
            code = returned if isinstance(returned, int) else ExitCode.OK  # Exit(n) returns n
        except _NO_ARGS_IS_HELP as exc:  # `sealcard card` alone: show its help
            click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
            code = ExitCode.OK
        except (Exception, KeyboardInterrupt) as exc:  # the one place failures are reported
            code = report_failure(exc, as_json=wants_json(argv))
        if standalone_mode:
            sys.exit(int(code))
        return int(code)

    def invoke(self, ctx: click.Context) -> Any:
        """Ctrl-C or a closed stdin at a prompt: abort without click's extra empty line."""
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, EOFError) as exc:
            raise click.exceptions.Abort from exc


def _debug_first(argv: list[str]) -> list[str]:
    """`--debug`/`-v` anywhere on the line (`sealcard card info -v`) as the global option it is.

    No command has an option of its own named so (docs/cli.md reserves -v), so moving it in
    front of the command changes nothing else; after `--` it is an argument and stays.
    """
    end = argv.index("--") if "--" in argv else len(argv)
    flags = [arg for arg in argv[:end] if arg in DEBUG_FLAGS]
    if not flags:
        return argv
    rest = [arg for arg in argv[:end] if arg not in DEBUG_FLAGS]
    return ["--debug", *rest, *argv[end:]]


def _debug(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value and not ctx.resilient_parsing:
        enable_debug_log()
    return value


def enable_debug_log() -> None:
    """Send sealcard's debug log (APDU headers and status words) to stderr, with a warning."""
    logger = logging.getLogger("sealcard")
    if any(getattr(h, "sealcard_debug", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("debug: %(name)s: %(message)s"))
    handler.sealcard_debug = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    click.echo(DEBUG_WARNING, err=True)


@click.group(
    cls=SealcardGroup, lazy=GROUPS, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(__version__, prog_name="sealcard")
@click.option(
    "--debug",
    "-v",
    is_flag=True,
    envvar=DEBUG_ENV,
    show_envvar=True,
    expose_value=False,
    is_eager=True,
    callback=_debug,
    help="Log APDU headers and status words (never data) to stderr, for support; a bug's "
    "traceback too. Anywhere on the line: sealcard -v card info.",
)
def cli() -> None:
    """Issue smart cards that hold a customer's blockchain key.

    No party on the way (card provider, bureau, mailer, shipper, the issuer's
    servers) ever sees the key. Each party has its own command group; run
    `sealcard GROUP --help` to see what it does. Exit codes, --json and the
    option names every command shares: docs/cli.md.
    """


def main() -> None:
    """Entry point of the installed `sealcard` executable."""
    cli.main(prog_name="sealcard")


if __name__ == "__main__":
    main()
