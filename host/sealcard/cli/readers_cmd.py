"""`sealcard readers`: every PC/SC reader, with the sealcard card in it if any."""

from __future__ import annotations

import click


@click.command(name="readers")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def readers(as_json: bool) -> None:
    """List every reader, card present or not, with the card's serial and state."""
    raise click.UsageError("not built yet")
