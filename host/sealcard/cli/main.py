"""The `sealcard` command: one group per party, and the one place errors become messages."""

from __future__ import annotations

import sys

import click

from sealcard import __version__
from sealcard.cli import (
    bureau_cmd,
    card_cmd,
    issuer_cmd,
    mailer_cmd,
    provider_cmd,
    readers_cmd,
    shipper_cmd,
    sim_cmd,
)
from sealcard.cli.common import emit_error
from sealcard.errors import SealcardError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sealcard")
def cli() -> None:
    """Issue smart cards that hold a customer's blockchain key.

    No party on the way (card provider, bureau, mailer, shipper, the issuer's
    servers) ever sees the key. Each party has its own command group; run
    `sealcard GROUP --help` to see what it does.
    """


cli.add_command(readers_cmd.readers)
cli.add_command(sim_cmd.sim)
cli.add_command(provider_cmd.provider)
cli.add_command(card_cmd.card)
cli.add_command(issuer_cmd.issuer)
cli.add_command(bureau_cmd.bureau)
cli.add_command(mailer_cmd.mailer)
cli.add_command(shipper_cmd.shipper)


def main() -> None:
    """Entry point: run the command group, map sealcard errors to exit code 1."""
    as_json = "--json" in sys.argv[1:]
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except SealcardError as exc:
        emit_error(str(exc), as_json=as_json, kind=type(exc).__name__)
        sys.exit(1)


if __name__ == "__main__":
    main()
