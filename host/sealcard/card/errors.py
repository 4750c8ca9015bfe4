"""Typed errors of the card layer: status words the sealcard applet gives a meaning."""

from __future__ import annotations

from sealcard.card.constants import (
    SW_CONDITIONS_NOT_SATISFIED,
    SW_INCORRECT_P1P2,
    SW_NOT_ENOUGH_MEMORY,
    SW_REFERENCED_DATA_NOT_FOUND,
    SW_WRONG_DATA,
    SW_WRONG_LENGTH,
)
from sealcard.errors import SealcardError
from sealcard.transport.errors import ApduError


class WrongStateError(ApduError):
    """SW_CONDITIONS_NOT_SATISFIED: wrong life-cycle state, or a prerequisite is missing."""


class NotFoundError(ApduError):
    """SW_REFERENCED_DATA_NOT_FOUND: the object is not (yet) on the card."""


class WrongDataError(ApduError):
    """SW_WRONG_DATA: the card refused the data (bad point, bad DER, bad serial)."""


class WrongLengthError(ApduError):
    """SW_WRONG_LENGTH: the data length is not allowed for this command."""


class TooLargeError(ApduError):
    """SW_NOT_ENOUGH_MEMORY: the data is longer than the card stores."""


class IncorrectParametersError(ApduError):
    """SW_INCORRECT_P1P2: P1/P2 not defined for this command."""


class NotSealcardError(SealcardError):
    """The card in the reader has no sealcard applet (SELECT failed)."""


class CardResponseError(SealcardError):
    """The card answered 9000 with data that does not parse as documented."""


_BY_SW: dict[int, type[ApduError]] = {
    SW_CONDITIONS_NOT_SATISFIED: WrongStateError,
    SW_REFERENCED_DATA_NOT_FOUND: NotFoundError,
    SW_WRONG_DATA: WrongDataError,
    SW_WRONG_LENGTH: WrongLengthError,
    SW_NOT_ENOUGH_MEMORY: TooLargeError,
    SW_INCORRECT_P1P2: IncorrectParametersError,
}


def typed_apdu_error(error: ApduError, context: str) -> ApduError:
    """The most specific ApduError subclass for `error.sw`, with `context` in its message."""
    cls = _BY_SW.get(error.sw, ApduError)
    return cls(error.sw, error.data, context)
