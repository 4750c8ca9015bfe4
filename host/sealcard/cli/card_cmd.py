"""`sealcard card`: commands of this party."""

from __future__ import annotations

import click


@click.group(name="card")
def card() -> None:
    """Talk to one card: its public data, attestation and use."""
