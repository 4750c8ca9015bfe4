"""`sealcard provider`: commands of this party."""

from __future__ import annotations

import click


@click.group(name="provider")
def provider() -> None:
    """Card provider: root CA and card initialization (step A)."""
