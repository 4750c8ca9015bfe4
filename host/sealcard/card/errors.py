"""Typed errors of the card layer: status words the sealcard applet gives a meaning."""

from __future__ import annotations

from sealcard.card.constants import (
    SW_AUTH_METHOD_BLOCKED,
    SW_CONDITIONS_NOT_SATISFIED,
    SW_DATA_INVALID,
    SW_INCORRECT_P1P2,
    SW_NOT_ENOUGH_MEMORY,
    SW_PIN_TRIES_REMAINING,
    SW_REFERENCED_DATA_NOT_FOUND,
    SW_SECURITY_STATUS_NOT_SATISFIED,
    SW_WRONG_DATA,
    SW_WRONG_LENGTH,
)
from sealcard.errors import (
    ConfigurationError,
    SealcardError,
    UnavailableError,
    VerificationError,
)
from sealcard.transport.errors import ApduError
from sealcard.transport.sw import PIN_TRIES_MASK

TRIES_MASK = 0x0F


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


class SecurityStatusError(ApduError):
    """SW_SECURITY_STATUS_NOT_SATISFIED: the PIN is not verified (or a signature did not verify)."""


class PinNotVerifiedError(SecurityStatusError):
    """SIGN HASH without a PIN verified in this card session."""

    meaning = "the PIN is not verified in this card session"


class InvalidPinError(ApduError):
    """SW_PIN_TRIES_REMAINING (63Cx): wrong PIN or PUK; `tries_remaining` is x.

    The message names the command and the tries left, never the value tried.
    """

    def __init__(self, sw: int, data: bytes = b"", context: str = "") -> None:
        super().__init__(sw, data, context)
        self.tries_remaining = sw & TRIES_MASK


class BlockedError(ApduError):
    """SW_AUTH_METHOD_BLOCKED (6983): the PIN (or the PUK) is blocked."""

    meaning = "blocked"


class BlobRejectedError(ApduError):
    """Base of PERSONALIZE's refusals of a sealed blob (the card is unchanged)."""


class BlobMalformedError(BlobRejectedError, WrongDataError):
    """PERSONALIZE SW_WRONG_DATA: the blob's framing is wrong (magic, version, lengths)."""

    meaning = "the card refused the blob, unchanged: its framing is malformed"


class WrongCardError(BlobRejectedError, NotFoundError):
    """PERSONALIZE SW_REFERENCED_DATA_NOT_FOUND: the blob names another card's serial."""

    meaning = "the card refused the blob, unchanged: it is sealed for another card"


class BadSignatureError(BlobRejectedError, SecurityStatusError):
    """PERSONALIZE SW_SECURITY_STATUS_NOT_SATISFIED: the issuer signature does not verify."""

    meaning = (
        "the card refused the blob, unchanged: its issuer signature does not verify with the "
        "issuer key in this card (or is not in low-S form)"
    )


class BlobDataInvalidError(BlobRejectedError):
    """PERSONALIZE SW_DATA_INVALID: decryption, OAEP padding or payload invalid (one SW for all)."""

    meaning = (
        "the card refused the blob, unchanged: it does not decrypt to a valid payload with "
        "this card's device key"
    )


class IssuerSignatureError(SecurityStatusError):
    """ISSUER COMMAND SW_SECURITY_STATUS_NOT_SATISFIED: the issuer's signature does not verify."""

    meaning = "the card refused the issuer command: its signature does not verify"


class NoChallengeError(WrongStateError):
    """ISSUER COMMAND SW_CONDITIONS_NOT_SATISFIED: no fresh challenge (or wrong state)."""

    meaning = "the card refused the issuer command: no fresh challenge, or not personalized"


class PinNotSetError(WrongStateError):
    """VERIFY SW_CONDITIONS_NOT_SATISFIED: no PIN set yet (the user chooses it first)."""


class NotSealcardError(UnavailableError):
    """The card in the reader has no sealcard applet (SELECT failed)."""


class SecretFormatError(ConfigurationError, ValueError):
    """A PIN or PUK that is not the allowed number of ASCII digits (checked before any APDU;
    the message names the rule, never the value)."""


class CardResponseError(SealcardError):
    """The card answered 9000 with data that does not parse as documented."""


class CardAuthenticationError(VerificationError):
    """The card's INTERNAL AUTHENTICATE answer (or its signature) does not verify."""


_BY_SW: dict[int, type[ApduError]] = {
    SW_CONDITIONS_NOT_SATISFIED: WrongStateError,
    SW_REFERENCED_DATA_NOT_FOUND: NotFoundError,
    SW_WRONG_DATA: WrongDataError,
    SW_WRONG_LENGTH: WrongLengthError,
    SW_NOT_ENOUGH_MEMORY: TooLargeError,
    SW_INCORRECT_P1P2: IncorrectParametersError,
    SW_SECURITY_STATUS_NOT_SATISFIED: SecurityStatusError,
    SW_AUTH_METHOD_BLOCKED: BlockedError,
}

PERSONALIZE_ERRORS: dict[int, type[ApduError]] = {
    SW_WRONG_DATA: BlobMalformedError,
    SW_REFERENCED_DATA_NOT_FOUND: WrongCardError,
    SW_SECURITY_STATUS_NOT_SATISFIED: BadSignatureError,
    SW_DATA_INVALID: BlobDataInvalidError,
}
"""PERSONALIZE's status words (docs/apdu.md) as the errors they mean."""

ISSUER_COMMAND_ERRORS: dict[int, type[ApduError]] = {
    SW_SECURITY_STATUS_NOT_SATISFIED: IssuerSignatureError,
    SW_CONDITIONS_NOT_SATISFIED: NoChallengeError,
}
VERIFY_ERRORS: dict[int, type[ApduError]] = {SW_CONDITIONS_NOT_SATISFIED: PinNotSetError}
SIGN_ERRORS: dict[int, type[ApduError]] = {SW_SECURITY_STATUS_NOT_SATISFIED: PinNotVerifiedError}


def typed_apdu_error(
    error: ApduError, context: str, overrides: dict[int, type[ApduError]] | None = None
) -> ApduError:
    """The most specific ApduError subclass for `error.sw`, with `context` in its message.

    `overrides` gives a command's own meaning of a status word (e.g. PERSONALIZE's 6A88
    is a blob for another card).
    """
    if error.sw & PIN_TRIES_MASK == SW_PIN_TRIES_REMAINING:
        return InvalidPinError(error.sw, error.data, context)
    cls = (overrides or {}).get(error.sw) or _BY_SW.get(error.sw, ApduError)
    return cls(error.sw, error.data, context)
