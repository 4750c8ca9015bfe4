"""The issuer's records of the party files: parties, files taken in, export batches, and what
the files that come back do to the orders (schema 6).

Every function that changes something takes the caller's transaction, so that taking in a file
is one transaction: its rows, their effect on the orders, their audit entries and the file id
(replays are refused by the primary key) commit together after the file was verified, or not
at all. Rows are handled in chunks, so memory does not grow with the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sealcard.issuer.db import Tx
from sealcard.issuer.errors import DuplicateRecordError, IssuerError
from sealcard.issuer.lifecycle import OrderState
from sealcard.issuer.records import CardInit, Records, insert_stock_cards, now

CHUNK: Final = 1000
BATCH_WRITING: Final = "writing"
BATCH_WRITTEN: Final = "written"


def _in(n: int) -> str:
    return "(" + ", ".join("?" * n) + ")"


def chunked(items: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- parties --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartyRow:
    role: str
    name: str
    fingerprint: str
    bundle: bytes
    added_at: str


def _party_conflict(tx: Tx, role: str, name: str, fingerprint: str, bundle: bytes) -> bool:
    """False when this exact certificate is registered already, True when it is new; a name
    or certificate registered otherwise raises `DuplicateRecordError`."""
    row = tx.one(
        "SELECT fingerprint, bundle FROM parties WHERE role = ? AND name = ?", (role, name)
    )
    if row is not None:
        if str(row[0]) == fingerprint and str(row[1]).encode() == bundle:
            return False
        raise DuplicateRecordError(
            f"{role} {name} is already registered with another certificate ({str(row[0])[:16]})"
        )
    other = tx.scalar(
        "SELECT role || ' ' || name FROM parties WHERE fingerprint = ?", (fingerprint,)
    )
    if other is not None:
        raise DuplicateRecordError(f"this certificate is already registered as {other}")
    return True


def check_new_party(
    records: Records, role: str, name: str, fingerprint: str, bundle: bytes
) -> bool:
    """`add_party`'s checks alone, before anything else is told about the party (a mailer's
    letter key must not reach the issuer HSM under a name registered with another key)."""
    with records.db.transaction() as tx:
        return _party_conflict(tx, role, name, fingerprint, bundle)


def add_party(
    records: Records,
    role: str,
    name: str,
    fingerprint: str,
    bundle: bytes,
    mailers: Sequence[str] = (),
) -> bool:
    """Register a party; False when this exact certificate is already registered. `mailers`:
    the mailers the issuer HSM holds after a mailer's letter key went to it, noted in the same
    transaction so that orders may name them (schema 5's mailers table)."""
    with records.db.transaction() as tx:
        added = _party_conflict(tx, role, name, fingerprint, bundle)
        if added:
            tx.execute(
                "INSERT INTO parties (role, name, fingerprint, bundle, added_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (role, name, fingerprint, bundle.decode("ascii"), now()),
            )
            records.audit_rows_in(
                tx,
                "party.add",
                [(None, None, {"role": role, "name": name, "fingerprint": fingerprint})],
            )
    if mailers:
        records.record_mailers(mailers)
    return added


def parties(records: Records) -> list[PartyRow]:
    with records.db.transaction() as tx:
        rows = tx.all(
            "SELECT role, name, fingerprint, bundle, added_at FROM parties ORDER BY role, name"
        )
    return [PartyRow(str(r[0]), str(r[1]), str(r[2]), str(r[3]).encode(), str(r[4])) for r in rows]


# -- files taken in -------------------------------------------------------------------------------


def file_seen(tx: Tx, file_id: str) -> bool:
    return tx.scalar("SELECT 1 FROM received_files WHERE file_id = ?", (file_id,)) is not None


def record_received(tx: Tx, file_id: str, kind: str, batch: str, sender: str, rows: int) -> None:
    if file_seen(tx, file_id):
        raise DuplicateRecordError(f"already imported: file {file_id}")
    tx.execute(
        "INSERT INTO received_files (file_id, kind, batch, sender, rows_count, received_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (file_id, kind, batch, sender, rows, now()),
    )


# -- pack import ----------------------------------------------------------------------------------


class PackImport:
    """A pack taken in chunk by chunk inside one transaction (`add`, then `finish`)."""

    def __init__(self, records: Records, tx: Tx, pack_serial: str, source: str) -> None:
        if tx.scalar("SELECT seq FROM packs WHERE pack_serial = ?", (pack_serial,)) is not None:
            raise DuplicateRecordError(f"pack {pack_serial} was imported before")
        self.records = records
        self.tx = tx
        self.pack_serial = pack_serial
        self.seq = int(
            tx.scalar(
                "INSERT INTO packs (pack_serial, imported_at, card_count, source)"
                " VALUES (?, ?, 0, ?) RETURNING seq",
                (pack_serial, now(), source),
            )
        )
        self.count = 0

    def add(self, cards: Sequence[CardInit]) -> None:
        serials = [c.serial.hex() for c in cards]
        if len(set(serials)) != len(serials):
            raise DuplicateRecordError(f"pack {self.pack_serial} lists a card serial twice")
        taken = self.tx.all(
            f"SELECT serial FROM cards WHERE serial IN {_in(len(serials))}",  # noqa: S608
            serials,
        )
        if taken:
            raise DuplicateRecordError(
                f"card {str(taken[0][0]).upper()} is already in stock (or twice in the pack)"
            )
        insert_stock_cards(self.tx, self.seq, self.count, cards)
        self.count += len(cards)

    def finish(self, detail: dict[str, Any]) -> int:
        if not self.count:
            raise IssuerError(f"pack {self.pack_serial} has no cards")
        self.tx.execute("UPDATE packs SET card_count = ? WHERE seq = ?", (self.count, self.seq))
        self.records.audit_rows_in(
            self.tx,
            "pack.import",
            [(None, None, {"pack_serial": self.pack_serial, "cards": self.count, **detail})],
        )
        return self.count


# -- export batches -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchRow:
    """One card of a batch: what the bureau and the mailer get."""

    position: int
    order_id: int
    serial: bytes
    sealed_blob: bytes
    pin_source: str
    mailer_id: str | None
    name: str
    address: str
    pin_letter: bytes | None


@dataclass(frozen=True)
class Batch:
    batch_id: str
    bureau: str | None
    """None for a batch of activation orders' PIN letters (no bureau)."""
    state: str
    orders: int


def batches(records: Records, state: str | None = None) -> list[Batch]:
    where, params = ("WHERE state = ?", [state]) if state else ("", [])
    with records.db.transaction() as tx:
        rows = tx.all(
            f"SELECT batch_id, bureau, state, orders_count FROM export_batches {where}"  # noqa: S608
            " ORDER BY created_at, batch_id",
            params,
        )
    return [
        Batch(str(r[0]), None if r[1] is None else str(r[1]), str(r[2]), int(r[3])) for r in rows
    ]


_FOR_THE_BUREAU: Final = (
    "SELECT o.id FROM orders o WHERE o.state = 'sealed' AND o.channel = 'bureau' AND NOT EXISTS"
    " (SELECT 1 FROM batch_orders b WHERE b.order_id = o.id) ORDER BY o.id LIMIT ?"
)
_LETTERS_AFTER_ACTIVATION: Final = (
    "SELECT o.id FROM orders o JOIN pin_letters l ON l.order_id = o.id"
    " WHERE o.state = 'personalized' AND o.channel = 'activation' AND NOT EXISTS"
    " (SELECT 1 FROM batch_orders b WHERE b.order_id = o.id) ORDER BY o.id LIMIT ?"
)


def reserve_batch(records: Records, batch_id: str, bureau: str | None, limit: int) -> int:
    """Take up to `limit` orders not yet in a batch into a new batch (state writing): sealed
    bureau orders for `bureau`, or, with bureau None, the PIN letters of activation orders
    whose card took its blob on the customer's computer (`personalized`; their blob never
    goes to a bureau, their letter goes to the mailer only now)."""
    query = _FOR_THE_BUREAU if bureau is not None else _LETTERS_AFTER_ACTIVATION
    with records.db.transaction() as tx:
        rows = tx.all(query + tx.for_update, (limit,))
        if not rows:
            return 0
        tx.execute(
            "INSERT INTO export_batches (batch_id, bureau, state, orders_count, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (batch_id, bureau, BATCH_WRITING, len(rows), now()),
        )
        tx.executemany(
            "INSERT INTO batch_orders (order_id, batch_id, position) VALUES (?, ?, ?)",
            [(int(r[0]), batch_id, i + 1) for i, r in enumerate(rows)],
        )
        records.audit_rows_in(
            tx,
            "batch.reserve",
            [(None, None, {"batch": batch_id, "bureau": bureau, "orders": len(rows)})],
        )
    return len(rows)


def batch_rows(records: Records, batch_id: str, *, page: int = CHUNK) -> Iterator[BatchRow]:
    """The batch's cards in position order, read a page at a time."""
    after = 0
    while True:
        with records.db.transaction() as tx:
            rows = tx.all(
                "SELECT b.position, o.id, o.card_serial, s.blob, o.pin_source, o.mailer_id,"
                " u.name, u.address, l.letter FROM batch_orders b"
                " JOIN orders o ON o.id = b.order_id JOIN users u ON u.id = o.user_id"
                " JOIN sealed_blobs s ON s.order_id = o.id"
                " LEFT JOIN pin_letters l ON l.order_id = o.id"
                " WHERE b.batch_id = ? AND b.position > ? ORDER BY b.position LIMIT ?",
                (batch_id, after, page),
            )
        if not rows:
            return
        for r in rows:
            yield BatchRow(
                int(r[0]),
                int(r[1]),
                bytes.fromhex(str(r[2])),
                bytes(r[3]),
                str(r[4]),
                None if r[5] is None else str(r[5]),
                str(r[6]),
                str(r[7]),
                None if r[8] is None else bytes(r[8]),
            )
        after = int(rows[-1][0])


def batch_mailers(records: Records, batch_id: str) -> list[tuple[str, int]]:
    """(mailer id, letters) of a batch's orders that have a PIN letter."""
    with records.db.transaction() as tx:
        rows = tx.all(
            "SELECT o.mailer_id, COUNT(*) FROM batch_orders b JOIN orders o ON o.id = b.order_id"
            " JOIN pin_letters l ON l.order_id = o.id WHERE b.batch_id = ?"
            " GROUP BY o.mailer_id ORDER BY o.mailer_id",
            (batch_id,),
        )
    return [(str(r[0]), int(r[1])) for r in rows]


def finish_batch(records: Records, batch_id: str, files: dict[str, str]) -> int:
    """The batch's files are written: its orders move to sent_to_bureau, or, in a batch of
    activation orders' letters (no bureau), stay personalized with the letter sent to the
    mailer; an audit entry per order either way. Returns the number of orders."""
    with records.db.transaction() as tx:
        row = tx.one("SELECT state, bureau FROM export_batches WHERE batch_id = ?", (batch_id,))
        state = None if row is None else row[0]
        if row is None or state != BATCH_WRITING:
            raise IssuerError(f"batch {batch_id} is not being written (state {state})")
        to_bureau = row[1] is not None
        action = "order.sent_to_bureau" if to_bureau else "order.pin_letter_sent"
        detail = json.dumps({"batch": batch_id}, sort_keys=True)
        done = 0
        after = 0
        while True:
            rows = tx.all(
                "SELECT b.position, o.id, o.card_serial FROM batch_orders b"
                " JOIN orders o ON o.id = b.order_id"
                " WHERE b.batch_id = ? AND b.position > ? ORDER BY b.position LIMIT ?",
                (batch_id, after, CHUNK),
            )
            if not rows:
                break
            if to_bureau:
                ids = [int(r[1]) for r in rows]
                records.move_orders(tx, ids, OrderState.SEALED, OrderState.SENT_TO_BUREAU)
            records.audit_rows_in(
                tx, action, [(int(r[1]), bytes.fromhex(str(r[2])), detail) for r in rows]
            )
            done += len(rows)
            after = int(rows[-1][0])
        tx.execute(
            "UPDATE export_batches SET state = ?, written_at = ? WHERE batch_id = ?",
            (BATCH_WRITTEN, now(), batch_id),
        )
        records.audit_rows_in(tx, "batch.written", [(None, None, {"batch": batch_id, **files})])
    return done


# -- what comes back ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardState:
    order_id: int
    state: OrderState
    user_public_key: bytes | None
    bureau: str | None
    channel: str
    batch: str | None = None


def orders_by_serial(tx: Tx, serials: Sequence[bytes]) -> dict[bytes, CardState]:
    """The order of each card serial (with its sealed user key and the bureau it went to)."""
    if not serials:
        return {}
    rows = tx.all(
        "SELECT o.card_serial, o.id, o.state, s.user_public_key, e.bureau, o.channel,"  # noqa: S608
        " b.batch_id"
        " FROM orders o"
        " LEFT JOIN sealed_blobs s ON s.order_id = o.id"
        " LEFT JOIN batch_orders b ON b.order_id = o.id"
        " LEFT JOIN export_batches e ON e.batch_id = b.batch_id"
        f" WHERE o.card_serial IN {_in(len(serials))}",
        [s.hex() for s in serials],
    )
    return {
        bytes.fromhex(str(r[0])): CardState(
            int(r[1]),
            OrderState(str(r[2])),
            None if r[3] is None else bytes(r[3]),
            None if r[4] is None else str(r[4]),
            str(r[5]),
            None if r[6] is None else str(r[6]),
        )
        for r in rows
    }


def move(
    records: Records,
    tx: Tx,
    moves: Sequence[tuple[int, bytes, OrderState, OrderState, dict[str, Any]]],
) -> None:
    """Apply (order, serial, from, to, detail) moves, grouped by (from, to), with audit rows."""
    groups: dict[tuple[OrderState, OrderState], list[tuple[int, bytes, dict[str, Any]]]] = {}
    for order_id, serial, current, wanted, detail in moves:
        groups.setdefault((current, wanted), []).append((order_id, serial, detail))
    for (current, wanted), items in groups.items():
        records.move_orders(tx, [i[0] for i in items], current, wanted)
        records.audit_rows_in(
            tx,
            f"order.{wanted.value}",
            [(o, s, {"from": current.value, "to": wanted.value, **d}) for o, s, d in items],
        )


def add_events(tx: Tx, kind: str, file_id: str, order_ids: Sequence[int]) -> None:
    """Record that something happened to these orders (ignored if it was recorded before)."""
    at = now()
    for order_id in order_ids:
        if (
            tx.scalar(
                "SELECT 1 FROM order_events WHERE order_id = ? AND kind = ?", (order_id, kind)
            )
            is None
        ):
            tx.execute(
                "INSERT INTO order_events (order_id, kind, file_id, at) VALUES (?, ?, ?, ?)",
                (order_id, kind, file_id, at),
            )


def has_event(tx: Tx, kind: str, order_ids: Sequence[int]) -> set[int]:
    if not order_ids:
        return set()
    rows = tx.all(
        f"SELECT order_id FROM order_events WHERE kind = ? AND order_id IN {_in(len(order_ids))}",  # noqa: S608
        [kind, *order_ids],
    )
    return {int(r[0]) for r in rows}
