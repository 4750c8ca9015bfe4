"""What the issuer's use cases work with, and the refusals they raise."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from sealcard.errors import ConfigurationError, SealcardError, UnavailableError
from sealcard.hsm.issuer_client import SealRequest, SealResult
from sealcard.issuer.accounts import Accounts
from sealcard.issuer.records import Records


class DeviceAuthKeyService(Protocol):
    """The issuer-system HSM (`sealcard.hsm.system_hsm.DeviceAuthKeys`)."""

    def generate_many(self, count: int, threads: int = 1) -> list[tuple[bytes, bytes]]: ...

    def sign(self, wrapped: bytes, data: bytes) -> bytes: ...


class SealService(Protocol):
    """The issuer HSM (`sealcard.hsm.issuer_client.IssuerHsmClient`)."""

    def seal_batch(self, requests: Sequence[SealRequest]) -> list[SealResult]: ...


@dataclass(frozen=True)
class Policy:
    """Limits of the accounts and the card protocols (config.toml ``[api]``)."""

    session_minutes: int = 30
    challenge_seconds: int = 120
    account_failures: int = 5  # failed sign-ins of one login per window before it waits
    address_failures: int = 30  # failed sign-ins from one address per window
    failure_window_minutes: int = 15
    pin_reset_grant_hours: int = 24  # how long an operator's PIN reset approval stays valid


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def stamp(when: dt.datetime) -> str:
    """A time as the records store it (ISO 8601, UTC, microseconds: sorts as text)."""
    return when.astimezone(dt.UTC).isoformat(timespec="microseconds")


@dataclass
class IssuerContext:
    """The issuer system as the use cases see it. `auth_keys` and `hsm` are needed only by
    activation and issuer commands; `provider_roots` and `issuer_public_key` by activation."""

    records: Records
    auth_keys: DeviceAuthKeyService | None = None
    hsm: SealService | None = None
    provider_roots: Sequence[x509.Certificate] = ()
    issuer_public_key: ec.EllipticCurvePublicKey | None = None
    policy: Policy = field(default_factory=Policy)
    clock: Callable[[], dt.datetime] = utc_now

    @property
    def accounts(self) -> Accounts:
        return Accounts(self.records)

    def acting_as(self, actor: str) -> IssuerContext:
        """The same context whose writes carry `actor` in the audit log."""
        return replace(self, records=self.records.acting_as(actor))

    def now(self) -> str:
        return stamp(self.clock())


class RefusedError(SealcardError):
    """A use case said no. `code` is stable for scripts and HTTP clients; the message says
    why in words; nothing was recorded unless the use case says so."""

    code = "refused"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class NotSignedInError(RefusedError):
    """No session, or an expired or ended one."""

    code = "not_signed_in"


class SignInRefusedError(RefusedError):
    """Wrong login or password (one message for both)."""

    code = "wrong_credentials"


class RateLimitedError(RefusedError):
    """Too many failed sign-ins for this login or address; try again after `retry_after_s`."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotAllowedError(RefusedError):
    """This account's role may not do that (or the card or order is not theirs)."""

    code = "forbidden"


class NotFoundError(RefusedError):
    """No such customer, order or card (for this account)."""

    code = "not_found"


class ConflictError(RefusedError):
    """The records are not in a state that allows it (order state, card used, ...)."""

    code = "conflict"


class BadRequestError(RefusedError, ConfigurationError):
    """The request itself is malformed, or a value in it breaks a rule (the CLI exits 2: a
    value to fix)."""

    code = "malformed"


class ServiceUnavailableError(RefusedError, UnavailableError):
    """An HSM role this use case needs is not configured or not reachable (HTTP 503; the CLI
    exits 3)."""

    code = "unavailable"
