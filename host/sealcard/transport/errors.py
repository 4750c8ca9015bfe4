"""Typed errors of the transport layer: readers, cards, links and status words."""

from __future__ import annotations

from typing import ClassVar

from sealcard.errors import SealcardError, UnavailableError
from sealcard.transport.sw import sw_name


class TransportError(UnavailableError):
    """Talking to a reader or a card failed below the APDU level."""


class PcscServiceError(TransportError):
    """The PC/SC service (pcscd) is not running or not reachable."""


class ReaderNotFoundError(TransportError):
    """No reader of that name is attached."""


class NoCardError(TransportError):
    """The reader is there but holds no card."""


class CardRemovedError(TransportError):
    """The card left the reader while we talked to it."""


class CardResetError(TransportError):
    """Someone reset the card: the session (selection, pending answers) is gone."""


class ReaderBusyError(TransportError):
    """Another program holds the card exclusively (or we asked for exclusive use and could not)."""


class ApduError(SealcardError):
    """The card answered a command with a status word other than 9000.

    `sw` is the status word (an int such as 0x6985), `data` whatever came with it.
    The message names the status word, e.g. "SW_CONDITIONS_NOT_SATISFIED (6985)"; a subclass
    that knows what the card meant says so first (`meaning`), for the person who reads it.
    """

    meaning: ClassVar[str] = ""

    def __init__(self, sw: int, data: bytes = b"", context: str = "") -> None:
        self.sw = sw
        self.data = data
        self.context = context
        text = f"{sw_name(sw)} ({sw:04X})"
        if context:
            text = f"{context}: card answered {text}"
        if self.meaning:
            text = f"{self.meaning} ({text})"
        super().__init__(text)
