"""The issuer system's records: packs and cards, users, derivation elements, orders, audit log.

Every write goes through `Records`; every order state change goes through
`sealcard.issuer.lifecycle.check_transition`. The audit log is append-only (this API has no
update or delete for it, and database triggers refuse them) and tamper-evident: every entry is
chained to the one before by a hash (`sealcard.issuer.audit`, docs/audit.md). No secret is ever
written here: the device authentication private keys are stored only wrapped by the
issuer-system HSM, the sealed blobs are encrypted to their card, and the PIN letters are
encrypted to the mailer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sealcard.issuer import audit as audit_chain
from sealcard.issuer.db import Database, Dialect, Tx, redact_url
from sealcard.issuer.errors import (
    CardAlreadyUsedError,
    ConcurrentUpdateError,
    DuplicateRecordError,
    IssuerError,
    RecordNotFoundError,
)
from sealcard.issuer.lifecycle import (
    LIVE_STATES,
    LOSABLE_STATES,
    REPLACEABLE_STATES,
    TRANSITIONS,
    OrderState,
    check_transition,
)
from sealcard.issuer.migrations import current_version, require_current
from sealcard.issuer.terms import (
    CHANNELS,
    DEFAULT_DERIVATION_BASE,
    MAX_NORMAL_INDEX,
    PIN_SOURCES,
    validate_base_path,
)

#: The pack that cards join when they are first seen at activation (not from a pack file).
ACTIVATION_PACK = "USER-ACTIVATION"

_COUNTER = "derivation_index"
_PIN_LETTER_DETAIL = {flag: json.dumps({"pin_letter": flag}) for flag in (False, True)}
_SETTING_BASE = "derivation_base"


def now() -> str:
    """The current time as stored in the records (ISO 8601, UTC, microseconds)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class CardInit:
    """One card's public initialization data, already checked by the caller (pack import).

    `verified` says the caller checked the certificates against the provider root; only
    verified cards are used for sealing.
    """

    serial: bytes
    device_public_key_der: bytes  # SubjectPublicKeyInfo DER, RSA-2048
    issuer_auth_public_key_der: bytes  # SubjectPublicKeyInfo DER, EC P-256
    device_key_cert: bytes | None = None
    issuer_auth_cert: bytes | None = None
    signed_device_key: bytes | None = None
    verified: bool = True


@dataclass(frozen=True)
class User:
    """A customer."""

    id: int
    name: str
    address: str
    created_at: str
    customer_ref: str | None = None


@dataclass(frozen=True)
class DerivationElement:
    """A BIP32 index under the base path, bound to one user for good (and to one order)."""

    index: int
    path: str
    user_id: int
    order_id: int | None
    bound_at: str


@dataclass(frozen=True)
class Order:
    """A card ordered for a user, and where it is in its life cycle."""

    id: int
    user_id: int
    state: OrderState
    pin_source: str
    mailer_id: str | None
    card_serial: bytes | None
    derivation_index: int | None
    created_at: str
    updated_at: str
    channel: str = "bureau"
    replaces_order_id: int | None = None
    failure_reason: str | None = None  # why it could not be sealed (on hold), or was cancelled

    @property
    def held(self) -> bool:
        """Reserved but refused by the issuer HSM: `issuer seal` skips it until retried."""
        return self.state is OrderState.CARD_ASSIGNED and self.failure_reason is not None

    @property
    def cancellable(self) -> bool:
        """Whether an operator may cancel it now (`Records.cancel_order`): requested, held or
        sealed; not while it is being sealed, nor once its card was personalized."""
        return OrderState.CANCELLED in TRANSITIONS[self.state] and (
            self.state is not OrderState.CARD_ASSIGNED or self.held
        )


@dataclass(frozen=True)
class HeldOrder:
    """An order that could not be sealed while the rest of its batch was, and why."""

    order_id: int
    reason: str


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log."""

    id: int
    at: str
    actor: str
    action: str
    order_id: int | None
    card_serial: bytes | None
    detail: dict[str, Any] | None


@dataclass(frozen=True)
class CardRecord:
    """A card as the issuer's stock knows it."""

    serial: bytes
    pack_serial: str
    status: str
    verified: bool
    device_public_key_der: bytes
    issuer_auth_public_key_der: bytes


@dataclass(frozen=True)
class PackStock:
    """A pack and how many of its cards are still unused."""

    pack_serial: str
    imported_at: str
    cards: int
    available: int


@dataclass(frozen=True)
class Status:
    """An overview of the records."""

    database: str
    schema_version: int
    derivation_base: str
    next_derivation_index: int
    users: int
    orders: dict[str, int]
    packs: list[PackStock]
    audit_entries: int
    held_orders: int = 0  # of orders["card_assigned"]: refused by the HSM, waiting for an operator


@dataclass(frozen=True)
class SealWork:
    """An order with a card and a derivation element, ready to be sealed."""

    order_id: int
    user_id: int
    user_name: str
    user_address: str
    card_serial: bytes
    device_public_key_der: bytes
    derivation_index: int
    derivation_path: str
    pin_source: str
    mailer_id: str | None


@dataclass(frozen=True)
class SealedItem:
    """What sealing produced for one order (all of it safe to store)."""

    order_id: int
    card_serial: bytes
    derivation_index: int
    device_auth_public_key: bytes
    device_auth_wrapped_key: bytes
    sealed_blob: bytes
    user_public_key: bytes
    pin_letter: bytes | None
    mailer_id: str | None


@dataclass(frozen=True)
class SealedOutput:
    """The stored result of sealing an order: what the bureau and the mailer need."""

    order_id: int
    card_serial: bytes
    derivation_path: str
    sealed_blob: bytes
    user_public_key: bytes
    pin_letter: bytes | None
    mailer_id: str | None
    device_auth_public_key: bytes
    device_auth_wrapped_key: bytes = field(repr=False)


_USER_COLS = "id, name, address, created_at, customer_ref"


def _check_order_terms(pin_source: str, mailer_id: str | None, channel: str) -> None:
    if pin_source not in PIN_SOURCES:
        raise IssuerError(f"pin_source must be one of {', '.join(PIN_SOURCES)}")
    if pin_source == "hsm" and not mailer_id:
        raise IssuerError("PIN and PUK from the issuer HSM need a mailer for the PIN letter")
    if channel not in CHANNELS:
        raise IssuerError(f"channel must be one of {', '.join(CHANNELS)}")


def _user(row: Sequence[Any]) -> User:
    return User(int(row[0]), str(row[1]), str(row[2]), str(row[3]), row[4])


def _order(row: Sequence[Any]) -> Order:
    return Order(
        id=int(row[0]),
        user_id=int(row[1]),
        state=OrderState(row[2]),
        pin_source=str(row[3]),
        mailer_id=row[4],
        card_serial=None if row[5] is None else bytes.fromhex(row[5]),
        derivation_index=None if row[6] is None else int(row[6]),
        created_at=str(row[7]),
        updated_at=str(row[8]),
        channel=str(row[9]),
        replaces_order_id=None if row[10] is None else int(row[10]),
        failure_reason=None if row[11] is None else str(row[11]),
    )


_ORDER_COLS = (
    "id, user_id, state, pin_source, mailer_id, card_serial, derivation_index, created_at, "
    "updated_at, channel, replaces_order_id, failure_reason"
)


def _in_list(n: int) -> str:
    return "(" + ", ".join("?" * n) + ")"


def insert_stock_cards(
    tx: Tx, pack_seq: int, first_position: int, cards: Sequence[CardInit]
) -> None:
    """Add `cards` to the stock as pack `pack_seq`'s cards from `first_position` on, available
    (a whole pack here, or a pack file's chunk in `exchange_records.PackImport`)."""
    tx.executemany(
        "INSERT INTO cards (serial, pack_seq, position, device_public_key,"
        " issuer_auth_public_key, device_key_cert, issuer_auth_cert, signed_device_key,"
        " verified, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'available')",
        [
            (
                c.serial.hex(),
                pack_seq,
                first_position + i,
                c.device_public_key_der,
                c.issuer_auth_public_key_der,
                c.device_key_cert,
                c.issuer_auth_cert,
                c.signed_device_key,
                int(c.verified),
            )
            for i, c in enumerate(cards)
        ],
    )


class Records:
    """The issuer's records in one database. `actor` names who acts, for the audit log."""

    def __init__(self, db: Database, actor: str) -> None:
        if not actor:
            raise IssuerError("an actor name is needed for the audit log")
        self.db = db
        self.actor = actor

    @classmethod
    def open(cls, url: str, actor: str) -> Records:
        """Open the records at `url`; the schema must be current (`sealcard issuer init`)."""
        db = Database(url)
        try:
            require_current(db)
        except BaseException:
            db.close()
            raise
        return cls(db, actor)

    def close(self) -> None:
        """Close the database connection."""
        self.db.close()

    # -- settings ---------------------------------------------------------------------------

    def initialize(self, derivation_base: str = DEFAULT_DERIVATION_BASE) -> str:
        """Record the derivation base path once; returns the base in force (an existing one
        wins)."""
        validate_base_path(derivation_base)
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                (_SETTING_BASE, derivation_base),
            )
            base = str(tx.scalar("SELECT value FROM settings WHERE name = ?", (_SETTING_BASE,)))
            if tx.rowcount:
                self._audit(tx, "records.initialize", detail={"derivation_base": base})
        return base

    def derivation_base(self, tx: Tx | None = None) -> str:
        """The base path every derivation element is an index under."""
        if tx is None:
            with self.db.transaction() as t:
                return self.derivation_base(t)
        value = tx.scalar("SELECT value FROM settings WHERE name = ?", (_SETTING_BASE,))
        if value is None:
            raise IssuerError(
                "the records have no derivation base path: run `sealcard issuer init`"
            )
        return str(value)

    # -- audit ------------------------------------------------------------------------------

    def _audit(
        self,
        tx: Tx,
        action: str,
        *,
        order_id: int | None = None,
        card_serial: bytes | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append one chained entry; the last write of `tx` (it locks the chain head)."""
        self._audit_many(tx, action, [(order_id, card_serial, detail)])

    def _audit_many(
        self,
        tx: Tx,
        action: str,
        rows: Sequence[tuple[int | None, bytes | None, dict[str, Any] | str | None]],
    ) -> None:
        """Append one chained entry per row; the last write of `tx` (it locks the chain head)."""
        at = now()
        audit_chain.append(
            tx,
            [
                (
                    at,
                    self.actor,
                    action,
                    o,
                    None if c is None else c.hex(),
                    d if d is None or isinstance(d, str) else json.dumps(d, sort_keys=True),
                )
                for o, c, d in rows
            ],
        )

    def audit_in(
        self,
        tx: Tx,
        action: str,
        *,
        order_id: int | None = None,
        card_serial: bytes | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append one entry to the audit log inside the caller's transaction."""
        self._audit(tx, action, order_id=order_id, card_serial=card_serial, detail=detail)

    def audit_rows_in(
        self,
        tx: Tx,
        action: str,
        rows: Sequence[tuple[int | None, bytes | None, dict[str, Any] | str | None]],
    ) -> None:
        """One entry per (order, card, detail) row inside the caller's transaction (the party
        files' hand-over audits a chunk of cards at once)."""
        self._audit_many(tx, action, rows)

    def audit(
        self,
        action: str,
        *,
        order_id: int | None = None,
        card_serial: bytes | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append one entry to the audit log (never put a secret in `detail`)."""
        with self.db.transaction() as tx:
            self._audit(tx, action, order_id=order_id, card_serial=card_serial, detail=detail)

    def audit_entries(
        self,
        *,
        order_id: int | None = None,
        card_serial: bytes | None = None,
        limit: int = 1000,
        before_id: int | None = None,
        newest_first: bool = False,
    ) -> list[AuditEntry]:
        """Audit log entries, oldest first (or newest first): all, of one order, or of one
        card; `before_id` pages backwards."""
        clauses: list[str] = []
        params: list[Any] = []
        if order_id is not None:
            clauses.append("order_id = ?")
            params.append(order_id)
        if card_serial is not None:
            clauses.append("card_serial = ?")
            params.append(card_serial.hex())
        if before_id is not None:
            clauses.append("id < ?")
            params.append(before_id)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        direction = "DESC" if newest_first else ""
        with self.db.transaction() as tx:
            rows = tx.all(
                f"SELECT id, at, actor, action, order_id, card_serial, detail FROM audit_log"  # noqa: S608
                f"{where} ORDER BY id {direction} LIMIT ?",
                [*params, limit],
            )
        return [
            AuditEntry(
                int(r[0]),
                str(r[1]),
                str(r[2]),
                str(r[3]),
                None if r[4] is None else int(r[4]),
                None if r[5] is None else bytes.fromhex(r[5]),
                None if r[6] is None else json.loads(r[6]),
            )
            for r in rows
        ]

    def acting_as(self, actor: str) -> Records:
        """The same records (same connection), with another actor for the audit log."""
        return Records(self.db, actor)

    # -- users ------------------------------------------------------------------------------

    def add_user(self, name: str, address: str, customer_ref: str | None = None) -> User:
        """Add a customer (`customer_ref`: the bank's customer number, unique when given)."""
        name, address = name.strip(), address.strip()
        ref = None if customer_ref is None or not customer_ref.strip() else customer_ref.strip()
        if not name or not address:
            raise IssuerError("a user needs a name and an address")
        at = now()
        with self.db.transaction() as tx:
            user_id = int(
                tx.scalar(
                    "INSERT INTO users (name, address, created_at, customer_ref)"
                    " VALUES (?, ?, ?, ?) RETURNING id",
                    (name, address, at, ref),
                )
            )
            self._audit(tx, "user.add", detail={"user_id": user_id})
        return User(user_id, name, address, at, ref)

    def get_user(self, user_id: int) -> User:
        """One user; `RecordNotFoundError` if there is none with this id."""
        with self.db.transaction() as tx:
            row = tx.one(f"SELECT {_USER_COLS} FROM users WHERE id = ?", (user_id,))  # noqa: S608
        if row is None:
            raise RecordNotFoundError(f"no user {user_id}")
        return _user(row)

    def list_users(self, *, offset: int = 0, limit: int = 100, search: str = "") -> list[User]:
        """Users by id; `search` matches the start of the customer number or a part of the
        name (case-insensitive)."""
        where, params = "", []
        if search:
            where = " WHERE customer_ref LIKE ? OR LOWER(name) LIKE ?"
            params = [f"{search}%", f"%{search.lower()}%"]
        with self.db.transaction() as tx:
            rows = tx.all(
                f"SELECT {_USER_COLS} FROM users{where} ORDER BY id LIMIT ? OFFSET ?",  # noqa: S608
                [*params, limit, offset],
            )
        return [_user(r) for r in rows]

    def add_users(self, people: Sequence[tuple[str | None, str, str]]) -> list[User]:
        """Add many customers at once: (customer_ref or None, name, address) each, in one
        transaction (all or none; a customer number seen before refuses the whole batch)."""
        with self.db.transaction() as tx:
            return self.insert_users(tx, people)

    def insert_users(self, tx: Tx, people: Sequence[tuple[str | None, str, str]]) -> list[User]:
        """`add_users` inside the caller's transaction (bulk intake adds accounts with them)."""
        cleaned: list[tuple[str | None, str, str]] = []
        for ref, name, address in people:
            ref = None if ref is None or not ref.strip() else ref.strip()
            name, address = name.strip(), address.strip()
            if not name or not address:
                raise IssuerError(f"customer {ref or '?'}: a user needs a name and an address")
            cleaned.append((ref, name, address))
        refs = [r for r, _, _ in cleaned if r is not None]
        if len(set(refs)) != len(refs):
            raise DuplicateRecordError("a customer number appears twice in the batch")
        if not cleaned:
            return []
        at = now()
        if tx.dialect is Dialect.POSTGRES:  # ids of this batch: no other insert in between
            tx.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
        taken: list[str] = []
        for i in range(0, len(refs), 500):
            part = refs[i : i + 500]
            taken += [
                str(r[0])
                for r in tx.all(
                    f"SELECT customer_ref FROM users WHERE customer_ref IN {_in_list(len(part))}",  # noqa: S608
                    part,
                )
            ]
        if taken:
            raise DuplicateRecordError(
                f"{len(taken)} customer number(s) exist already, e.g. {sorted(taken)[0]!r}:"
                " nothing was added"
            )
        first = int(tx.scalar("SELECT COALESCE(MAX(id), 0) FROM users")) + 1
        tx.executemany(
            "INSERT INTO users (customer_ref, name, address, created_at) VALUES (?, ?, ?, ?)",
            [(r, n, a, at) for r, n, a in cleaned],
        )
        rows = tx.all(
            f"SELECT {_USER_COLS} FROM users WHERE id >= ? ORDER BY id",  # noqa: S608
            (first,),
        )
        if len(rows) != len(cleaned):
            raise ConcurrentUpdateError("another process added users at the same time")
        users = [_user(r) for r in rows]
        self._audit_many(tx, "user.add", [(None, None, {"user_id": u.id}) for u in users])
        return users

    def users_by_ref(self, refs: Sequence[str]) -> dict[str, int]:
        """User ids of these customer numbers (those that exist)."""
        found: dict[str, int] = {}
        with self.db.transaction() as tx:
            for i in range(0, len(refs), 500):
                part = list(refs[i : i + 500])
                for ref, user_id in tx.all(
                    f"SELECT customer_ref, id FROM users WHERE customer_ref IN {_in_list(len(part))}",  # noqa: S608, E501
                    part,
                ):
                    found[str(ref)] = int(user_id)
        return found

    # -- derivation elements ----------------------------------------------------------------

    def _allocate(
        self, tx: Tx, bindings: Sequence[tuple[int, int | None]]
    ) -> list[DerivationElement]:
        """Allocate one fresh index per (user, order) from the monotonic counter and bind it.

        Runs inside the caller's transaction: the counter step and the binding rows commit
        together or not at all, so an index is never handed out without its binding, and a
        committed binding is never undone (the table refuses UPDATE and DELETE).
        """
        n = len(bindings)
        if n == 0:
            return []
        base = self.derivation_base(tx)
        end = tx.scalar(
            "UPDATE counters SET value = value + ? WHERE name = ? RETURNING value", (n, _COUNTER)
        )
        if end is None:
            raise IssuerError("the derivation counter is missing: the schema is damaged")
        first = int(end) - n
        if int(end) - 1 > MAX_NORMAL_INDEX:
            raise IssuerError(f"derivation indexes under {base} are used up")
        at = now()
        elements = [
            DerivationElement(first + i, f"{base}/{first + i}", user_id, order_id, at)
            for i, (user_id, order_id) in enumerate(bindings)
        ]
        tx.executemany(
            "INSERT INTO derivation_elements (idx, path, user_id, order_id, bound_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [(e.index, e.path, e.user_id, e.order_id, at) for e in elements],
        )
        return elements

    def allocate_derivation_element(self, user_id: int) -> DerivationElement:
        """Bind a fresh derivation element to a user (not yet to an order), for good."""
        self.get_user(user_id)
        with self.db.transaction() as tx:
            (element,) = self._allocate(tx, [(user_id, None)])
            self._audit(tx, "derivation.bind", detail={"user_id": user_id, "index": element.index})
        return element

    def derivation_elements(self, user_id: int | None = None) -> list[DerivationElement]:
        """Derivation elements (of one user, or all), by index."""
        where, params = ("WHERE user_id = ?", [user_id]) if user_id is not None else ("", [])
        with self.db.transaction() as tx:
            rows = tx.all(
                "SELECT idx, path, user_id, order_id, bound_at FROM derivation_elements"  # noqa: S608
                f" {where} ORDER BY idx",
                params,
            )
        return [
            DerivationElement(
                int(r[0]), str(r[1]), int(r[2]), None if r[3] is None else int(r[3]), str(r[4])
            )
            for r in rows
        ]

    # -- mailers ----------------------------------------------------------------------------

    def record_mailers(self, mailer_ids: Sequence[str]) -> list[str]:
        """Note mailers the issuer HSM holds (after `register-mailer`, or its list); returns
        the ones new to the records."""
        at = now()
        added: list[str] = []
        with self.db.transaction() as tx:
            for mailer_id in dict.fromkeys(mailer_ids):
                tx.execute(
                    "INSERT INTO mailers (id, registered_at) VALUES (?, ?)"
                    " ON CONFLICT (id) DO NOTHING",
                    (mailer_id, at),
                )
                if tx.rowcount:
                    added.append(mailer_id)
            if added:
                self._audit(tx, "mailer.record", detail={"mailers": added})
        return added

    def mailers(self) -> list[str]:
        """Every mailer the records know, by id."""
        with self.db.transaction() as tx:
            return [str(r[0]) for r in tx.all("SELECT id FROM mailers ORDER BY id")]

    # -- orders -----------------------------------------------------------------------------

    def request_orders(
        self,
        user_id: int,
        count: int = 1,
        *,
        pin_source: str = "hsm",
        mailer_id: str | None = None,
        channel: str = "bureau",
    ) -> list[Order]:
        """Order `count` cards for a user (state `requested`)."""
        if count < 1:
            raise IssuerError("count must be at least 1")
        self.get_user(user_id)
        return self.add_orders([(user_id, pin_source, mailer_id, channel)] * count)

    def add_orders(self, wanted: Sequence[tuple[int, str, str | None, str]]) -> list[Order]:
        """Many orders in one transaction: (user id, PIN source, mailer or None, channel) each.
        All or none: an unknown user refuses the whole batch."""
        for _user_id, pin_source, mailer_id, channel in wanted:
            _check_order_terms(pin_source, mailer_id, channel)
        if not wanted:
            return []
        at = now()
        with self.db.transaction() as tx:
            user_ids = sorted({w[0] for w in wanted})
            known = 0
            for i in range(0, len(user_ids), 500):
                part = user_ids[i : i + 500]
                known += int(
                    tx.scalar(
                        f"SELECT COUNT(*) FROM users WHERE id IN {_in_list(len(part))}",  # noqa: S608
                        part,
                    )
                )
            if known != len(user_ids):
                raise RecordNotFoundError(f"{len(user_ids) - known} of the users do not exist")
            ids = self._insert_orders(tx, [(*w, None, None) for w in wanted], at)
            audit = [(i, None, {"user_id": w[0]}) for i, w in zip(ids, wanted, strict=True)]
            self._audit_many(tx, "order.request", audit)
        return [
            Order(i, u, OrderState.REQUESTED, p, m, None, None, at, at, c)
            for i, (u, p, m, c) in zip(ids, wanted, strict=True)
        ]

    def _insert_orders(
        self,
        tx: Tx,
        rows: Sequence[tuple[int, str, str | None, str, int | None, int | None]],
        at: str,
    ) -> list[int]:
        """Insert orders (user, PIN source, mailer, channel, derivation index, replaced order);
        returns their ids in the same order. Every mailer named must be known (`mailers`)."""
        for mailer_id in sorted({r[2] for r in rows if r[2] is not None}):
            self._require_mailer(tx, mailer_id)
        if len(rows) == 1:
            return [
                int(
                    tx.scalar(
                        "INSERT INTO orders (user_id, state, pin_source, mailer_id, channel,"
                        " derivation_index, replaces_order_id, created_at, updated_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                        (rows[0][0], OrderState.REQUESTED.value, *rows[0][1:], at, at),
                    )
                )
            ]
        if tx.dialect is Dialect.POSTGRES:  # ids of this batch: no other insert in between
            tx.execute("LOCK TABLE orders IN SHARE ROW EXCLUSIVE MODE")
        first = int(tx.scalar("SELECT COALESCE(MAX(id), 0) FROM orders")) + 1
        tx.executemany(
            "INSERT INTO orders (user_id, state, pin_source, mailer_id, channel, derivation_index,"
            " replaces_order_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(r[0], OrderState.REQUESTED.value, *r[1:], at, at) for r in rows],
        )
        found = tx.all("SELECT id FROM orders WHERE id >= ? ORDER BY id", (first,))
        ids = [int(r[0]) for r in found]
        if len(ids) != len(rows):
            raise ConcurrentUpdateError("another process added orders at the same time")
        return ids

    def request_replacement(
        self,
        old_order_id: int,
        *,
        pin_source: str = "hsm",
        mailer_id: str | None = None,
        channel: str = "bureau",
    ) -> Order:
        """A new card for the user of a lost or terminated card, with the same derivation
        element (the same user key and addresses), by the bureau or activation channel.

        Refused unless the old order is `lost` or `terminated`, or while another order with
        the same element is still live (one working card per element)."""
        _check_order_terms(pin_source, mailer_id, channel)
        at = now()
        with self.db.transaction() as tx:
            old = self._locked_order(tx, old_order_id)
            if old.state not in REPLACEABLE_STATES:
                raise IssuerError(
                    f"order {old.id} is {old.state.value}: only a lost or terminated card is"
                    " replaced (mark it lost first)"
                )
            if old.derivation_index is None:
                raise IssuerError(f"order {old.id} has no derivation element to carry over")
            live = [s.value for s in LIVE_STATES]
            other = tx.scalar(
                f"SELECT id FROM orders WHERE derivation_index = ? AND state IN {_in_list(len(live))}",  # noqa: S608, E501
                [old.derivation_index, *live],
            )
            if other is not None:
                raise DuplicateRecordError(
                    f"order {int(other)} already carries this derivation element to a card"
                )
            (new_id,) = self._insert_orders(
                tx,
                [(old.user_id, pin_source, mailer_id, channel, old.derivation_index, old.id)],
                at,
            )
            self._audit(
                tx,
                "order.replacement",
                order_id=new_id,
                detail={
                    "user_id": old.user_id,
                    "replaces_order_id": old.id,
                    "derivation_index": old.derivation_index,
                    "channel": channel,
                },
            )
        return self.get_order(new_id)

    @staticmethod
    def _require_mailer(tx: Tx, mailer_id: str) -> None:
        if tx.scalar("SELECT id FROM mailers WHERE id = ?", (mailer_id,)) is None:
            raise RecordNotFoundError(
                f"no mailer {mailer_id!r}: register it with `sealcard issuer party add --role"
                " mailer --cert FILE` (its certificate file), or its bare key with `sealcard"
                f" issuer hsm mailer add --id {mailer_id} --key KEY` (mailers registered before"
                " schema 5: run `sealcard issuer hsm mailer list` once to record them)"
            )

    def get_order(self, order_id: int) -> Order:
        """One order; `RecordNotFoundError` if there is none with this id."""
        with self.db.transaction() as tx:
            row = tx.one(f"SELECT {_ORDER_COLS} FROM orders WHERE id = ?", (order_id,))  # noqa: S608
        if row is None:
            raise RecordNotFoundError(f"no order {order_id}")
        return _order(row)

    def order_for_card(self, serial: bytes) -> Order:
        """The order a card was assigned to; `RecordNotFoundError` if the card has none."""
        with self.db.transaction() as tx:
            row = tx.one(
                f"SELECT {_ORDER_COLS} FROM orders WHERE card_serial = ?",  # noqa: S608
                (serial.hex(),),
            )
        if row is None:
            raise RecordNotFoundError(f"no order holds card {serial.hex().upper()}")
        return _order(row)

    def list_orders(
        self,
        state: OrderState | None = None,
        limit: int = 1000,
        *,
        channel: str | None = None,
        held: bool = False,
        after_id: int = 0,
    ) -> list[Order]:
        """Orders, oldest first (ids above `after_id`), optionally in one state and of one
        channel, or only the held ones (refused by the issuer HSM, waiting for an operator)."""
        where: list[str] = ["id > ?"]
        params: list[Any] = [after_id]
        if state is not None:
            where.append("state = ?")
            params.append(state.value)
        if channel is not None:
            where.append("channel = ?")
            params.append(channel)
        if held:
            where.append("state = ? AND failure_reason IS NOT NULL")
            params.append(OrderState.CARD_ASSIGNED.value)
        with self.db.transaction() as tx:
            rows = tx.all(
                f"SELECT {_ORDER_COLS} FROM orders WHERE {' AND '.join(where)}"  # noqa: S608
                " ORDER BY id LIMIT ?",
                [*params, limit],
            )
        return [_order(r) for r in rows]

    def hold_orders(self, tx: Tx, held: Sequence[HeldOrder]) -> None:
        """Inside commit point B: orders the issuer HSM refused stay `card_assigned` with
        their reason, and sealing skips them until an operator retries or cancels them."""
        if not held:
            return
        at = now()
        tx.executemany(
            "UPDATE orders SET failure_reason = ?, updated_at = ?"
            " WHERE id = ? AND state = ? AND failure_reason IS NULL",
            [(h.reason, at, h.order_id, OrderState.CARD_ASSIGNED.value) for h in held],
        )
        if tx.rowcount != len(held):
            raise ConcurrentUpdateError(
                f"{len(held) - tx.rowcount} of {len(held)} held orders were no longer"
                " reserved: another process moved them"
            )
        self._audit_many(tx, "order.held", [(h.order_id, None, {"reason": h.reason}) for h in held])

    def retry_order(self, order_id: int) -> Order:
        """Take an order off hold (after its cause is fixed): the next `issuer seal` seals it
        with the card and derivation element it already has."""
        with self.db.transaction() as tx:
            order = self._locked_order(tx, order_id)
            if not order.held:
                raise IssuerError(f"order {order_id} is not on hold ({order.state.value})")
            tx.execute(
                "UPDATE orders SET failure_reason = NULL, updated_at = ?"
                " WHERE id = ? AND state = ? AND failure_reason IS NOT NULL",
                (now(), order_id, OrderState.CARD_ASSIGNED.value),
            )
            if tx.rowcount != 1:
                raise ConcurrentUpdateError(f"order {order_id} was changed by another process")
            self._audit(tx, "order.retry", order_id=order_id, detail={"was": order.failure_reason})
        return self.get_order(order_id)

    def cancel_order(self, order_id: int, *, note: str | None = None) -> Order:
        """End an order whose card was not personalized: a requested one, one on hold (the
        issuer HSM refused it) or a sealed one (its blob is never handed out). It becomes
        `cancelled`, with why in `failure_reason` (the note, and a held order's reason). Its
        card, if it had one, and its derivation element are not used again for another order
        (a replacement of a lost card carries the element of that card, never of this one).
        Refused for an order being sealed right now (`card_assigned`, not held)."""
        with self.db.transaction() as tx:
            order = self._locked_order(tx, order_id)
            if not order.cancellable:
                hint = (
                    "it is being sealed or an interrupted run reserved it: run `sealcard issuer"
                    " seal` (then it is sealed, or on hold, and can be cancelled)"
                    if order.state is OrderState.CARD_ASSIGNED
                    else "only a requested, held or sealed order is cancelled (a personalized"
                    " card is reported lost, or terminated)"
                )
                raise IssuerError(f"order {order_id} is {order.state.value}: {hint}")
            if order.state is OrderState.SEALED:
                # an interrupted `issuer export` took it into a batch whose files it writes
                # again: cancelled now, the bureau could still get its blob and the batch
                # could never move on to sent_to_bureau
                batch = tx.scalar(
                    "SELECT batch_id FROM batch_orders WHERE order_id = ?", (order_id,)
                )
                if batch is not None:
                    raise IssuerError(
                        f"order {order_id} is in export batch {batch}, whose files an interrupted"
                        " `sealcard issuer export` did not finish: run it again (the card then"
                        " goes to the bureau; report it lost or terminate it afterwards)"
                    )
            reason = "cancelled" + (f": {note}" if note else "")
            if order.held:
                reason += f" (was on hold: {order.failure_reason})"
            self._move(
                tx, [order_id], order.state, OrderState.CANCELLED, {"failure_reason": [reason]}
            )
            detail: dict[str, Any] = {"from": order.state.value, "to": "cancelled"}
            if note:
                detail["note"] = note
            if order.held:
                detail["was_on_hold"] = order.failure_reason
            self._audit(
                tx,
                "order.cancelled",
                order_id=order_id,
                card_serial=order.card_serial,
                detail=detail,
            )
        return self.get_order(order_id)

    def _locked_order(self, tx: Tx, order_id: int) -> Order:
        """The order, locked for `tx` (waiting for a sealer that holds it: then it is seen as
        that sealer left it); `RecordNotFoundError` if there is none."""
        row = tx.one(
            f"SELECT {_ORDER_COLS} FROM orders WHERE id = ?{tx.for_update_wait}",  # noqa: S608
            (order_id,),
        )
        if row is None:
            raise RecordNotFoundError(f"no order {order_id}")
        return _order(row)

    def advance_order(self, order_id: int, wanted: OrderState, *, note: str | None = None) -> Order:
        """Move an order along its life cycle after sealing (sent to bureau, personalized,
        failed, shipped, PIN mailed). Card assignment and sealing happen only in
        `sealcard.issuer.batch`, which stores what they produce."""
        if wanted in (OrderState.CARD_ASSIGNED, OrderState.SEALED):
            raise IssuerError(
                f"orders reach {wanted.value!r} only by sealing (sealcard issuer seal)"
            )
        if wanted is OrderState.CANCELLED:
            return self.cancel_order(order_id, note=note)
        with self.db.transaction() as tx:
            order = self._locked_order(tx, order_id)
            if wanted is OrderState.FAILED and order.state in (
                OrderState.REQUESTED,
                OrderState.CARD_ASSIGNED,
            ):
                raise IssuerError(
                    f"order {order_id} is {order.state.value}, not sealed: end it with"
                    " `sealcard issuer order cancel`"
                )
            check_transition(order_id, order.state, wanted)
            self._move(tx, [order_id], order.state, wanted)
            detail: dict[str, Any] = {"from": order.state.value, "to": wanted.value}
            if note:
                detail["note"] = note
            self._audit(
                tx,
                f"order.{wanted.value}",
                order_id=order_id,
                card_serial=order.card_serial,
                detail=detail,
            )
        return self.get_order(order_id)

    def mark_lost(self, order_id: int, *, note: str | None = None) -> Order:
        """The card of this order was reported lost or stolen."""
        order = self.get_order(order_id)
        if order.state not in LOSABLE_STATES:
            raise IssuerError(
                f"order {order_id} is {order.state.value}: only a card that was personalized"
                " (personalized, shipped, pin_mailed) can be reported lost"
            )
        return self.advance_order(order_id, OrderState.LOST, note=note)

    def mark_terminated(self, order_id: int, *, note: str | None = None) -> Order:
        """The card of this order accepted the issuer-signed terminate."""
        return self.advance_order(order_id, OrderState.TERMINATED, note=note)

    def orders_of_user(self, user_id: int) -> list[Order]:
        """Every order of one user, oldest first."""
        with self.db.transaction() as tx:
            rows = tx.all(
                f"SELECT {_ORDER_COLS} FROM orders WHERE user_id = ? ORDER BY id",  # noqa: S608
                (user_id,),
            )
        return [_order(r) for r in rows]

    def activation_order(self, user_id: int) -> Order | None:
        """The user's oldest activation order still waiting for its card (requested), or
        under way for one (card_assigned, sealed)."""
        states = [OrderState.REQUESTED.value, OrderState.CARD_ASSIGNED.value]
        states.append(OrderState.SEALED.value)
        with self.db.transaction() as tx:
            row = tx.one(
                f"SELECT {_ORDER_COLS} FROM orders WHERE user_id = ? AND channel = 'activation'"  # noqa: S608
                f" AND state IN {_in_list(len(states))} ORDER BY id LIMIT 1",
                [user_id, *states],
            )
        return None if row is None else _order(row)

    def card(self, serial: bytes) -> CardRecord | None:
        """The stock record of one card (None: never seen)."""
        with self.db.transaction() as tx:
            row = tx.one(
                "SELECT c.serial, p.pack_serial, c.status, c.verified, c.device_public_key,"
                " c.issuer_auth_public_key FROM cards c JOIN packs p ON p.seq = c.pack_seq"
                " WHERE c.serial = ?",
                (serial.hex(),),
            )
        if row is None:
            return None
        return CardRecord(
            bytes.fromhex(row[0]),
            str(row[1]),
            str(row[2]),
            bool(row[3]),
            bytes(row[4]),
            bytes(row[5]),
        )

    def bind_activation_card(self, tx: Tx, order_id: int, card: CardInit) -> None:
        """Commit point A for one activation (inside the caller's transaction): take the card
        the user presents into the records (into the USER-ACTIVATION pack if it was not in
        the stock; out of the stock if it was there unused), pair it with the order, give the
        order its derivation element (a fresh one, or the replaced card's), move it to
        `card_assigned`. Refused (nothing written) if the card is known with other keys or
        already used."""
        order = self._locked_order(tx, order_id)
        if order.channel != "activation" or order.state is not OrderState.REQUESTED:
            raise IssuerError(f"order {order_id} is not an activation order waiting for a card")
        serial = card.serial.hex()
        known = tx.one(
            "SELECT status, device_public_key, issuer_auth_public_key, verified FROM cards"  # noqa: S608
            f" WHERE serial = ?{tx.for_update}",
            (serial,),
        )
        if known is not None:
            if str(known[0]) != "available":
                raise CardAlreadyUsedError(
                    f"card {serial.upper()} is already used for another order"
                )
            if bytes(known[1]) != card.device_public_key_der or bytes(known[2]) != (
                card.issuer_auth_public_key_der
            ):
                raise IssuerError(f"card {serial.upper()} reports other keys than its stock record")
            tx.execute(
                "UPDATE cards SET status = 'assigned' WHERE serial = ? AND status = 'available'",
                (serial,),
            )
            if tx.rowcount != 1:
                raise ConcurrentUpdateError("the card was taken by another process")
        else:
            seq = self._activation_pack(tx)
            position = int(
                tx.scalar(
                    "SELECT COALESCE(MAX(position), -1) + 1 FROM cards WHERE pack_seq = ?", (seq,)
                )
            )
            tx.execute(
                "INSERT INTO cards (serial, pack_seq, position, device_public_key,"
                " issuer_auth_public_key, device_key_cert, issuer_auth_cert, signed_device_key,"
                " verified, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'assigned')",
                (
                    serial,
                    seq,
                    position,
                    card.device_public_key_der,
                    card.issuer_auth_public_key_der,
                    card.device_key_cert,
                    card.issuer_auth_cert,
                    card.signed_device_key,
                    int(card.verified),
                ),
            )
            tx.execute("UPDATE packs SET card_count = card_count + 1 WHERE seq = ?", (seq,))
        if order.derivation_index is None:
            (element,) = self._allocate(tx, [(order.user_id, order.id)])
            index = element.index
        else:
            index = order.derivation_index
        self._move(
            tx,
            [order.id],
            OrderState.REQUESTED,
            OrderState.CARD_ASSIGNED,
            {"card_serial": [serial], "derivation_index": [index]},
        )
        self._audit(
            tx,
            "order.card_assigned",
            order_id=order.id,
            card_serial=card.serial,
            detail={
                "derivation_index": index,
                "channel": "activation",
                "card_was_in_stock": known is not None,
            },
        )

    def _activation_pack(self, tx: Tx) -> int:
        seq = tx.scalar("SELECT seq FROM packs WHERE pack_serial = ?", (ACTIVATION_PACK,))
        if seq is not None:
            return int(seq)
        return int(
            tx.scalar(
                "INSERT INTO packs (pack_serial, imported_at, card_count, source)"
                " VALUES (?, ?, 0, 'activation') RETURNING seq",
                (ACTIVATION_PACK, now()),
            )
        )

    def _move(
        self,
        tx: Tx,
        order_ids: Sequence[int],
        current: OrderState,
        wanted: OrderState,
        columns: dict[str, Sequence[Any]] | None = None,
    ) -> None:
        """The one place that changes order states: checks the life cycle, and that no other
        process moved any of these orders first. `columns` sets more columns per order in the
        same statement (values in the order of `order_ids`)."""
        for order_id in order_ids:
            check_transition(order_id, current, wanted)
        n = len(order_ids)
        if not n:
            return
        at = now()
        if columns:  # one statement: UPDATE .. FROM (VALUES (id, value, ..), ..) (SQLite 3.33+)
            names = list(columns)
            sets = "".join(f", {name} = v.column{k + 2}" for k, name in enumerate(names))
            group = "(" + ", ".join("?" * (len(names) + 1)) + ")"
            tx.execute(
                f"UPDATE orders SET state = ?, updated_at = ?{sets}"  # noqa: S608
                f" FROM (VALUES {', '.join([group] * n)}) AS v"
                " WHERE orders.id = v.column1 AND orders.state = ?",
                [
                    wanted.value,
                    at,
                    *(
                        v
                        for i, oid in enumerate(order_ids)
                        for v in (oid, *(columns[c][i] for c in names))
                    ),
                    current.value,
                ],
            )
        else:
            tx.execute(
                "UPDATE orders SET state = ?, updated_at = ?"  # noqa: S608
                f" WHERE state = ? AND id IN {_in_list(n)}",
                [wanted.value, at, current.value, *order_ids],
            )
        if tx.rowcount != n:
            raise ConcurrentUpdateError(
                f"{n - tx.rowcount} of {n} orders were no longer"
                f" {current.value!r}: another process moved them"
            )

    def move_orders(
        self, tx: Tx, order_ids: Sequence[int], current: OrderState, wanted: OrderState
    ) -> None:
        """Move orders from one state to the next inside the caller's transaction (for the
        hand-over of party files, sealcard.issuer.exchange_records)."""
        self._move(tx, order_ids, current, wanted)

    # -- packs and cards --------------------------------------------------------------------

    def import_pack(
        self, pack_serial: str, cards: Sequence[CardInit], *, source: str = "import"
    ) -> int:
        """Add a pack of already-verified cards to the stock (FIFO: older packs are used first).

        Returns the number of cards added. A pack serial or card serial seen before is refused
        (`DuplicateRecordError`) and nothing is added.
        """
        pack_serial = pack_serial.strip()
        if not pack_serial:
            raise IssuerError("a pack needs a serial")
        if not cards:
            raise IssuerError(f"pack {pack_serial} has no cards")
        serials = [c.serial for c in cards]
        if len(set(serials)) != len(serials):
            raise DuplicateRecordError(f"pack {pack_serial} lists a card serial twice")
        for c in cards:
            if not 4 <= len(c.serial) <= 16:
                raise IssuerError(f"card serial {c.serial.hex()} must be 4..16 bytes")
        at = now()
        with self.db.transaction() as tx:
            if tx.scalar("SELECT seq FROM packs WHERE pack_serial = ?", (pack_serial,)) is not None:
                raise DuplicateRecordError(f"pack {pack_serial} was imported before")
            seq = int(
                tx.scalar(
                    "INSERT INTO packs (pack_serial, imported_at, card_count, source)"
                    " VALUES (?, ?, ?, ?) RETURNING seq",
                    (pack_serial, at, len(cards), source),
                )
            )
            insert_stock_cards(tx, seq, 0, cards)
            self._audit(
                tx,
                "pack.import",
                detail={
                    "pack_serial": pack_serial,
                    "cards": len(cards),
                    "source": source,
                    "verified": sum(1 for c in cards if c.verified),
                },
            )
        return len(cards)

    def packs(self) -> list[PackStock]:
        """Every pack, oldest first, with its unused cards."""
        with self.db.transaction() as tx:
            rows = tx.all(
                "SELECT p.pack_serial, p.imported_at, p.card_count,"
                " (SELECT COUNT(*) FROM cards c WHERE c.pack_seq = p.seq AND c.status = 'available'"
                "  AND c.verified = 1)"
                " FROM packs p ORDER BY p.seq"
            )
        return [PackStock(str(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows]

    def pack_exists(self, pack_serial: str) -> bool:
        """Whether a pack with this serial was imported."""
        with self.db.transaction() as tx:
            return (
                tx.scalar("SELECT seq FROM packs WHERE pack_serial = ?", (pack_serial,)) is not None
            )

    # -- sealing support (used by sealcard.issuer.batch) ------------------------------------

    def reserve(
        self,
        tx: Tx,
        limit: int,
        *,
        pack_serial: str | None = None,
        order_ids: Sequence[int] | None = None,
    ) -> list[int]:
        """Commit point A (inside the caller's transaction): pair up to `limit` requested orders
        (oldest first) with unused verified cards (oldest pack first), bind a fresh derivation
        element to each, and move them to `card_assigned`. Returns the ids of the paired orders."""
        order_filter, order_params = "", []
        if order_ids is not None:
            if not order_ids:
                return []
            order_filter = f" AND id IN {_in_list(len(order_ids))}"
            order_params = list(order_ids)
        orders = tx.all(
            "SELECT id, user_id, derivation_index FROM orders"  # noqa: S608
            f" WHERE state = ? AND channel = 'bureau'{order_filter}"
            f" ORDER BY id LIMIT ?{tx.for_update}",
            [OrderState.REQUESTED.value, *order_params, limit],
        )
        if not orders:
            return []
        pack_filter, pack_params = "", []
        if pack_serial is not None:
            pack_filter = " AND p.pack_serial = ?"
            pack_params = [pack_serial]
        lock = " FOR UPDATE OF c SKIP LOCKED" if tx.dialect is Dialect.POSTGRES else ""
        cards = tx.all(
            "SELECT c.serial FROM cards c JOIN packs p ON p.seq = c.pack_seq"  # noqa: S608
            f" WHERE c.status = 'available' AND c.verified = 1{pack_filter}"
            f" ORDER BY c.pack_seq, c.position LIMIT ?{lock}",
            [*pack_params, len(orders)],
        )
        n = min(len(orders), len(cards))
        if n == 0:
            return []
        orders, cards = orders[:n], cards[:n]
        order_ids_now = [int(o[0]) for o in orders]
        fresh = iter(self._allocate(tx, [(int(o[1]), int(o[0])) for o in orders if o[2] is None]))
        # a replacement order carries the element of the card it replaces; others get a new one
        indexes = [int(o[2]) if o[2] is not None else next(fresh).index for o in orders]
        serials = [str(c[0]) for c in cards]
        tx.execute(
            f"UPDATE cards SET status = 'assigned' WHERE status = 'available' AND serial IN {_in_list(n)}",  # noqa: S608, E501
            serials,
        )
        if tx.rowcount != n:
            raise ConcurrentUpdateError("cards were taken by another process")
        self._move(
            tx,
            order_ids_now,
            OrderState.REQUESTED,
            OrderState.CARD_ASSIGNED,
            {"card_serial": serials, "derivation_index": indexes},
        )
        self._audit_many(
            tx,
            "order.card_assigned",
            [
                (oid, bytes.fromhex(s), f'{{"derivation_index": {i}}}')
                for s, i, oid in zip(serials, indexes, order_ids_now, strict=True)
            ],
        )
        return order_ids_now

    def assigned_work(
        self,
        tx: Tx,
        limit: int,
        *,
        after_order_id: int = 0,
        pack_serial: str | None = None,
        order_ids: Sequence[int] | None = None,
        lock: bool = False,
        wait_for_locked: bool = False,
    ) -> list[SealWork]:
        """Orders in `card_assigned` (reserved, not yet sealed, not held), oldest first, with
        what the issuer HSM needs to seal them. With `lock` (PostgreSQL), the orders are locked
        for the caller's transaction and orders another transaction holds are skipped: the
        claim of a sealer among several (`sealcard.issuer.batch`). With `wait_for_locked` as
        well, an order another transaction holds is waited for instead, and taken if it is
        still `card_assigned` when that transaction ends: for the orders a sealer has just
        reserved itself, which another transaction may hold for a moment without claiming
        them (another sealer's reserve that still saw them `requested` locks each, re-checks
        it, drops it and keeps the lock until it commits); skipped, they were left reserved
        and unsealed."""
        extra = ""
        params: list[Any] = []
        claim = ""
        if lock and tx.dialect is Dialect.POSTGRES:
            claim = " FOR UPDATE OF o" if wait_for_locked else " FOR UPDATE OF o SKIP LOCKED"
        if pack_serial is not None:
            extra += " AND p.pack_serial = ?"
            params.append(pack_serial)
        if order_ids is not None:
            if not order_ids:
                return []
            extra += f" AND o.id IN {_in_list(len(order_ids))}"
            params.extend(order_ids)
        rows = tx.all(
            "SELECT o.id, o.user_id, u.name, u.address, o.card_serial, c.device_public_key,"  # noqa: S608
            " o.derivation_index, d.path, o.pin_source, o.mailer_id"
            " FROM orders o JOIN users u ON u.id = o.user_id"
            " JOIN cards c ON c.serial = o.card_serial JOIN packs p ON p.seq = c.pack_seq"
            " JOIN derivation_elements d ON d.idx = o.derivation_index"
            f" WHERE o.state = ? AND o.failure_reason IS NULL AND o.id > ?{extra}"
            f" ORDER BY o.id LIMIT ?{claim}",
            [OrderState.CARD_ASSIGNED.value, after_order_id, *params, limit],
        )
        return [
            SealWork(
                int(r[0]),
                int(r[1]),
                str(r[2]),
                str(r[3]),
                bytes.fromhex(r[4]),
                bytes(r[5]),
                int(r[6]),
                str(r[7]),
                str(r[8]),
                r[9],
            )
            for r in rows
        ]

    def store_sealed(self, tx: Tx, items: Sequence[SealedItem]) -> None:
        """Commit point B (inside the caller's transaction): store device authentication keys
        (wrapped), sealed blobs, user public keys and PIN letters, and move the orders to
        `sealed`. If any order is no longer `card_assigned`, nothing is stored."""
        if not items:
            return
        self._move(tx, [i.order_id for i in items], OrderState.CARD_ASSIGNED, OrderState.SEALED)
        at = now()
        tx.executemany(
            "INSERT INTO device_auth_keys (card_serial, order_id, public_key, wrapped_private_key,"
            " created_at) VALUES (?, ?, ?, ?, ?)",
            [
                (
                    i.card_serial.hex(),
                    i.order_id,
                    i.device_auth_public_key,
                    i.device_auth_wrapped_key,
                    at,
                )
                for i in items
            ],
        )
        tx.executemany(
            "INSERT INTO sealed_blobs (order_id, card_serial, derivation_index, blob,"
            " user_public_key, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    i.order_id,
                    i.card_serial.hex(),
                    i.derivation_index,
                    i.sealed_blob,
                    i.user_public_key,
                    at,
                )
                for i in items
            ],
        )
        tx.executemany(
            "INSERT INTO pin_letters (order_id, mailer_id, letter, created_at) VALUES (?, ?, ?, ?)",
            [
                (i.order_id, i.mailer_id, i.pin_letter, at)
                for i in items
                if i.pin_letter is not None
            ],
        )
        self._audit_many(
            tx,
            "order.sealed",
            [
                (i.order_id, i.card_serial, _PIN_LETTER_DETAIL[i.pin_letter is not None])
                for i in items
            ],
        )

    def count_pending(
        self, *, pack_serial: str | None = None, order_ids: Sequence[int] | None = None
    ) -> tuple[int, int, int]:
        """(orders reserved but not sealed and not held, orders requested, verified cards
        available)."""
        with self.db.transaction() as tx:
            of, op = "", []
            if order_ids is not None:
                of, op = f" AND o.id IN {_in_list(len(order_ids))}", list(order_ids)
                if not order_ids:
                    return (0, 0, 0)
            pf, pp = ("", []) if pack_serial is None else (" AND p.pack_serial = ?", [pack_serial])
            assigned = int(
                tx.scalar(
                    "SELECT COUNT(*) FROM orders o JOIN cards c ON c.serial = o.card_serial"  # noqa: S608
                    " JOIN packs p ON p.seq = c.pack_seq"
                    f" WHERE o.state = ? AND o.failure_reason IS NULL{pf}{of}",
                    [OrderState.CARD_ASSIGNED.value, *pp, *op],
                )
            )
            requested = int(
                tx.scalar(
                    "SELECT COUNT(*) FROM orders o"  # noqa: S608
                    f" WHERE o.state = ? AND o.channel = 'bureau'{of}",
                    [OrderState.REQUESTED.value, *op],
                )
            )
            available = int(
                tx.scalar(
                    "SELECT COUNT(*) FROM cards c JOIN packs p ON p.seq = c.pack_seq"  # noqa: S608
                    f" WHERE c.status = 'available' AND c.verified = 1{pf}",
                    pp,
                )
            )
        return assigned, requested, available

    def sealed_output(self, order_id: int) -> SealedOutput:
        """What sealing stored for an order."""
        with self.db.transaction() as tx:
            row = tx.one(
                "SELECT s.order_id, s.card_serial, d.path, s.blob, s.user_public_key, l.letter,"
                " l.mailer_id, k.public_key, k.wrapped_private_key FROM sealed_blobs s"
                " JOIN derivation_elements d ON d.idx = s.derivation_index"
                " JOIN device_auth_keys k ON k.order_id = s.order_id"
                " LEFT JOIN pin_letters l ON l.order_id = s.order_id WHERE s.order_id = ?",
                (order_id,),
            )
        if row is None:
            raise RecordNotFoundError(f"order {order_id} has no sealed blob")
        return SealedOutput(
            int(row[0]),
            bytes.fromhex(row[1]),
            str(row[2]),
            bytes(row[3]),
            bytes(row[4]),
            None if row[5] is None else bytes(row[5]),
            row[6],
            bytes(row[7]),
            bytes(row[8]),
        )

    # -- overview ---------------------------------------------------------------------------

    def status(self) -> Status:
        """Counts of everything, for `sealcard issuer status`."""
        version = current_version(self.db)
        packs = self.packs()
        with self.db.transaction() as tx:
            base = self.derivation_base(tx)
            next_index = int(tx.scalar("SELECT value FROM counters WHERE name = ?", (_COUNTER,)))
            users = int(tx.scalar("SELECT COUNT(*) FROM users"))
            by_state = dict.fromkeys((s.value for s in OrderState), 0)
            for state, count in tx.all("SELECT state, COUNT(*) FROM orders GROUP BY state"):
                by_state[str(state)] = int(count)
            audit = int(tx.scalar("SELECT COUNT(*) FROM audit_log"))
            held = int(
                tx.scalar(
                    "SELECT COUNT(*) FROM orders WHERE state = ? AND failure_reason IS NOT NULL",
                    (OrderState.CARD_ASSIGNED.value,),
                )
            )
        return Status(
            redact_url(self.db.url), version, base, next_index, users, by_state, packs, audit, held
        )
