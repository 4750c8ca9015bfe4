"""`sealcard sim`: commands of this party."""

from __future__ import annotations

import click


@click.group(name="sim")
def sim() -> None:
    """Start, stop and reset simulated cards behind pcscd (jCardSim + vpcd)."""
