"""Adapters between the `sim_cards` fixture's card objects and what the sim tests need."""

from __future__ import annotations

from typing import Any

from sealcard import sim


def reset_blank(card: Any) -> None:
    """Make the simulated card blank (fresh applet install)."""
    if hasattr(card, "reset_blank"):
        card.reset_blank()
    else:
        sim.reset_card(card.index)


def tear(card: Any) -> None:
    """Pull the simulated card out and put it back (power lost); wait until it is back."""
    if hasattr(card, "tear"):
        card.tear()
    else:
        sim.tear_card(card.index)
