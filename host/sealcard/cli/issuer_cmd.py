"""`sealcard issuer`: commands of this party."""

from __future__ import annotations

import click


@click.group(name="issuer")
def issuer() -> None:
    """Issuer system and issuer HSMs: users, orders, sealing."""
