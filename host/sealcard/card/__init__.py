"""sealcard.card: layer 2, the sealcard applet's commands (`SealcardSession`) and constants.

`SealcardSession` and `CardStatus` are imported on first use: they bring in cryptography and
coincurve, which a command that needs only the constants (its `--help`) should not pay for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sealcard.card.constants import Capability, CertRef, DataObject, KeyRef, State

if TYPE_CHECKING:
    from sealcard.card.encoding import CardStatus
    from sealcard.card.session import SealcardSession

__all__ = [
    "Capability",
    "CardStatus",
    "CertRef",
    "DataObject",
    "KeyRef",
    "SealcardSession",
    "State",
]


def __getattr__(name: str) -> Any:
    if name == "SealcardSession":
        from sealcard.card.session import SealcardSession

        return SealcardSession
    if name == "CardStatus":
        from sealcard.card.encoding import CardStatus

        return CardStatus
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
