"""The roles of the parties that exchange files (light: the CLI's options name them)."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    """The parties that exchange files."""

    PROVIDER = "provider"
    ISSUER = "issuer"
    BUREAU = "bureau"
    MAILER = "mailer"
    SHIPPER = "shipper"
