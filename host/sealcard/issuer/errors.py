"""Errors of the issuer system's records and batch sealing."""

from __future__ import annotations

from sealcard.errors import ConfigurationError, SealcardError, UnavailableError


class IssuerError(SealcardError):
    """Base of every error the issuer system raises."""


class DatabaseError(IssuerError):
    """The database could not be reached, or a statement failed."""


class DatabaseUnavailableError(DatabaseError, UnavailableError):
    """The database server does not answer (or refuses the connection)."""


class MigrationError(DatabaseError):
    """The schema is newer than this code, or a migration failed."""


class RecordNotFoundError(IssuerError, ConfigurationError):
    """A user, order, pack or card named by the caller does not exist (a wrong value given:
    the CLI exits with 2)."""


class DuplicateRecordError(IssuerError):
    """A record with the same key already exists (e.g. a pack imported twice)."""


class InvalidTransitionError(IssuerError):
    """An order was asked to move to a state its life cycle does not allow from where it is."""

    def __init__(self, order_id: int, current: str, wanted: str) -> None:
        super().__init__(f"order {order_id}: cannot go from {current!r} to {wanted!r}")
        self.order_id = order_id
        self.current = current
        self.wanted = wanted


class CardAlreadyUsedError(IssuerError):
    """The card belongs to an order already (a card is used for one order, once)."""


class ConcurrentUpdateError(IssuerError):
    """Another process changed the same records first; nothing of this step was written."""


class AppendOnlyViolationError(IssuerError):
    """Something tried to change or remove an append-only record (audit log, derivation element)."""


class SealingError(IssuerError):
    """The issuer HSM's answer to a batch did not match what was asked."""
