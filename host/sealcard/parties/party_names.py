"""Names a party's home goes by, light enough for the CLI's option defaults to import."""

from __future__ import annotations

from sealcard.formats.roles import Role


def home_env(role: Role) -> str:
    """The environment variable that names this party's home folder."""
    return f"SEALCARD_{role.value.upper()}_HOME"
