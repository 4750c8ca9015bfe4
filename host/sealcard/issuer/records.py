"""The issuer system's records: packs and cards, users, derivation elements, orders, audit log.

Every write goes through `Records`; every order state change goes through
`sealcard.issuer.lifecycle.check_transition`. The audit log is append-only (this API has no
update or delete for it, and database triggers refuse them). No secret is ever written here:
the device authentication private keys are stored only wrapped by the issuer-system HSM, the
sealed blobs are encrypted to their card, and the PIN letters are encrypted to the mailer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sealcard.issuer.db import Database, Dialect, Tx, redact_url
from sealcard.issuer.errors import (
    ConcurrentUpdateError,
    DuplicateRecordError,
    IssuerError,
    RecordNotFoundError,
)
from sealcard.issuer.lifecycle import OrderState, check_transition
from sealcard.issuer.migrations import current_version, require_current

#: Derivation base path of a new database: BIP44 account 0, external chain; each derivation
#: element is a normal (non-hardened) index under it, so the base path's xpub yields every
#: user's public key without the HSM.
DEFAULT_DERIVATION_BASE = "m/44'/0'/0'/0"
#: Largest normal BIP32 index.
MAX_NORMAL_INDEX = 2**31 - 1
#: PIN sources of an order: made by the issuer HSM (FIG. 5) or not in the blob at all (the
#: bureau or the user provides them).
PIN_SOURCES = ("hsm", "none")

_PATH_RE = re.compile(r"^m(/[0-9]+['h]?)*$")
_COUNTER = "derivation_index"
_PIN_LETTER_DETAIL = {flag: json.dumps({"pin_letter": flag}) for flag in (False, True)}
_SETTING_BASE = "derivation_base"


def now() -> str:
    """The current time as stored in the records (ISO 8601, UTC, microseconds)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def validate_base_path(path: str) -> str:
    """Check a BIP32 base path's syntax (``m/44'/0'/0'/0``); returns it unchanged."""
    if not _PATH_RE.match(path):
        raise IssuerError(f"not a BIP32 path: {path!r} (expected like m/44'/0'/0'/0)")
    for step in path.split("/")[1:]:
        if int(step.rstrip("'h")) > MAX_NORMAL_INDEX:
            raise IssuerError(f"BIP32 step out of range in {path!r}")
    return path


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
    )


_ORDER_COLS = (
    "id, user_id, state, pin_source, mailer_id, card_serial, derivation_index, created_at, "
    "updated_at"
)


def _in_list(n: int) -> str:
    return "(" + ", ".join("?" * n) + ")"


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
        tx.execute(
            "INSERT INTO audit_log (at, actor, action, order_id, card_serial, detail)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                now(),
                self.actor,
                action,
                order_id,
                None if card_serial is None else card_serial.hex(),
                None if detail is None else json.dumps(detail, sort_keys=True),
            ),
        )

    def _audit_many(
        self,
        tx: Tx,
        action: str,
        rows: Sequence[tuple[int | None, bytes | None, dict[str, Any] | str | None]],
    ) -> None:
        at = now()
        tx.executemany(
            "INSERT INTO audit_log (at, actor, action, order_id, card_serial, detail)"
            " VALUES (?, ?, ?, ?, ?, ?)",
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

    def audit_entries(self, *, order_id: int | None = None, limit: int = 1000) -> list[AuditEntry]:
        """Audit log entries, oldest first (of one order, or all)."""
        where, params = ("WHERE order_id = ?", [order_id]) if order_id is not None else ("", [])
        with self.db.transaction() as tx:
            rows = tx.all(
                f"SELECT id, at, actor, action, order_id, card_serial, detail FROM audit_log"  # noqa: S608
                f" {where} ORDER BY id LIMIT ?",
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

    # -- users ------------------------------------------------------------------------------

    def add_user(self, name: str, address: str) -> User:
        """Add a customer."""
        name, address = name.strip(), address.strip()
        if not name or not address:
            raise IssuerError("a user needs a name and an address")
        at = now()
        with self.db.transaction() as tx:
            user_id = int(
                tx.scalar(
                    "INSERT INTO users (name, address, created_at) VALUES (?, ?, ?) RETURNING id",
                    (name, address, at),
                )
            )
            self._audit(tx, "user.add", detail={"user_id": user_id})
        return User(user_id, name, address, at)

    def get_user(self, user_id: int) -> User:
        """One user; `RecordNotFoundError` if there is none with this id."""
        with self.db.transaction() as tx:
            row = tx.one("SELECT id, name, address, created_at FROM users WHERE id = ?", (user_id,))
        if row is None:
            raise RecordNotFoundError(f"no user {user_id}")
        return User(int(row[0]), str(row[1]), str(row[2]), str(row[3]))

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

    # -- orders -----------------------------------------------------------------------------

    def request_orders(
        self, user_id: int, count: int = 1, *, pin_source: str = "hsm", mailer_id: str | None = None
    ) -> list[Order]:
        """Order `count` cards for a user (state `requested`)."""
        if count < 1:
            raise IssuerError("count must be at least 1")
        if pin_source not in PIN_SOURCES:
            raise IssuerError(f"pin_source must be one of {', '.join(PIN_SOURCES)}")
        if pin_source == "hsm" and not mailer_id:
            raise IssuerError("PIN and PUK from the issuer HSM need a mailer for the PIN letter")
        self.get_user(user_id)
        at = now()
        ids: list[int] = []
        with self.db.transaction() as tx:
            for _ in range(count):
                ids.append(
                    int(
                        tx.scalar(
                            "INSERT INTO orders (user_id, state, pin_source, mailer_id, created_at,"
                            " updated_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                            (user_id, OrderState.REQUESTED.value, pin_source, mailer_id, at, at),
                        )
                    )
                )
            self._audit_many(tx, "order.request", [(i, None, {"user_id": user_id}) for i in ids])
        return [
            Order(i, user_id, OrderState.REQUESTED, pin_source, mailer_id, None, None, at, at)
            for i in ids
        ]

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

    def list_orders(self, state: OrderState | None = None, limit: int = 1000) -> list[Order]:
        """Orders, oldest first, optionally in one state."""
        where, params = ("WHERE state = ?", [state.value]) if state is not None else ("", [])
        with self.db.transaction() as tx:
            rows = tx.all(
                f"SELECT {_ORDER_COLS} FROM orders {where} ORDER BY id LIMIT ?",  # noqa: S608
                [*params, limit],
            )
        return [_order(r) for r in rows]

    def advance_order(self, order_id: int, wanted: OrderState, *, note: str | None = None) -> Order:
        """Move an order along its life cycle after sealing (sent to bureau, personalized,
        failed, shipped, PIN mailed). Card assignment and sealing happen only in
        `sealcard.issuer.batch`, which stores what they produce."""
        if wanted in (OrderState.CARD_ASSIGNED, OrderState.SEALED):
            raise IssuerError(
                f"orders reach {wanted.value!r} only by sealing (sealcard issuer seal)"
            )
        with self.db.transaction() as tx:
            row = tx.one(
                f"SELECT {_ORDER_COLS} FROM orders WHERE id = ?{tx.for_update}",  # noqa: S608
                (order_id,),
            )
            if row is None:
                raise RecordNotFoundError(f"no order {order_id}")
            order = _order(row)
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
        if columns:
            names = list(columns)
            sets = "".join(f", {name} = ?" for name in names)
            tx.executemany(
                f"UPDATE orders SET state = ?, updated_at = ?{sets} WHERE id = ? AND state = ?",  # noqa: S608
                [
                    (wanted.value, at, *(columns[c][i] for c in names), oid, current.value)
                    for i, oid in enumerate(order_ids)
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

    def audit_in(
        self,
        tx: Tx,
        action: str,
        rows: Sequence[tuple[int | None, bytes | None, dict[str, Any] | str | None]],
    ) -> None:
        """Audit entries (order, card, detail) inside the caller's transaction."""
        self._audit_many(tx, action, rows)

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
            tx.executemany(
                "INSERT INTO cards (serial, pack_seq, position, device_public_key,"
                " issuer_auth_public_key, device_key_cert, issuer_auth_cert, signed_device_key,"
                " verified, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'available')",
                [
                    (
                        c.serial.hex(),
                        seq,
                        pos,
                        c.device_public_key_der,
                        c.issuer_auth_public_key_der,
                        c.device_key_cert,
                        c.issuer_auth_cert,
                        c.signed_device_key,
                        int(c.verified),
                    )
                    for pos, c in enumerate(cards)
                ],
            )
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
            f"SELECT id, user_id FROM orders WHERE state = ?{order_filter}"  # noqa: S608
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
        elements = self._allocate(tx, [(int(o[1]), int(o[0])) for o in orders])
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
            {"card_serial": serials, "derivation_index": [e.index for e in elements]},
        )
        self._audit_many(
            tx,
            "order.card_assigned",
            [
                (oid, bytes.fromhex(s), f'{{"derivation_index": {e.index}}}')
                for s, e, oid in zip(serials, elements, order_ids_now, strict=True)
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
    ) -> list[SealWork]:
        """Orders in `card_assigned` (reserved, not yet sealed), oldest first, with what the
        issuer HSM needs to seal them."""
        extra = ""
        params: list[Any] = []
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
            f" WHERE o.state = ? AND o.id > ?{extra} ORDER BY o.id LIMIT ?",
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
        """(orders reserved but not sealed, orders requested, verified cards available)."""
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
                    f" JOIN packs p ON p.seq = c.pack_seq WHERE o.state = ?{pf}{of}",
                    [OrderState.CARD_ASSIGNED.value, *pp, *op],
                )
            )
            requested = int(
                tx.scalar(
                    f"SELECT COUNT(*) FROM orders o WHERE o.state = ?{of}",  # noqa: S608
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
        return Status(
            redact_url(self.db.url), version, base, next_index, users, by_state, packs, audit
        )
