"""Errors of the HSM layer."""

from __future__ import annotations

from sealcard.errors import SealcardError, UnavailableError


class HsmError(SealcardError):
    """A PKCS#11 token or the issuer HSM service failed or refused."""


class TokenNotFoundError(HsmError):
    """No token with the configured label behind the configured module."""


class KeyNotFoundError(HsmError):
    """No key with this label in the token (run `sealcard issuer hsm init`)."""


def _with_reason(reason: str, message: str) -> str:
    """ "reason: message", once: a message relayed from the service already starts with it
    (it used to read "malformed: malformed: ...")."""
    prefix = f"{reason}: "
    return message if message.startswith(prefix) else prefix + message


class RequestRefused(HsmError):  # noqa: N818 - the agreed name (ISSUER_API.md)
    """The issuer HSM service refused a request (bad signature, replay, stale, undecryptable,
    malformed): ``reason`` is one of protocol.REFUSED_*."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(_with_reason(reason, message))
        self.reason = reason
        self.detail = message  # the message without the reason (what the service sends)


class TokenBusyError(HsmError, UnavailableError):
    """Another process has held the token store's lock for too long (`hsm.store_lock`)."""


class ServiceUnavailableError(HsmError, UnavailableError):
    """The issuer HSM service does not answer on its socket."""


class AnswerLostError(ServiceUnavailableError):
    """A request reached the issuer HSM service but its answer did not come back (the service
    closed the connection, stopped, or took too long). The client never sends such a request
    again by itself: whether it was carried out is unknown."""


class BadResponseError(HsmError):
    """A reply the issuer system must not trust: unsigned, not signed by the issuer key, for
    another request, or malformed. ``reason`` is one of protocol.RESPONSE_*."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(_with_reason(reason, message))
        self.reason = reason
