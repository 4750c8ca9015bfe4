"""sealcard.card: layer 2, the sealcard applet's commands (`SealcardSession`) and constants."""

from sealcard.card.constants import Capability, CertRef, DataObject, KeyRef, State
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
