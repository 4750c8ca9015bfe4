"""Issuer records on SQLite: migrations, users and orders, packs (FIFO), derivation elements,
the append-only audit log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sealcard.issuer.db import Database, DatabaseUrl, Dialect, redact_url
from sealcard.issuer.errors import (
    AppendOnlyViolationError,
    DuplicateRecordError,
    InvalidTransitionError,
    IssuerError,
    MigrationError,
    RecordNotFoundError,
)
from sealcard.issuer.lifecycle import OrderState
from sealcard.issuer.migrations import (
    apply_migrations,
    current_version,
    latest_version,
    require_current,
)
from sealcard.issuer.records import CardInit, Records

BASE = "m/44'/0'/0'/0"
MAILERS = ["m1", "mailer-1"]


def card(n: int) -> CardInit:
    return CardInit(n.to_bytes(8, "big"), b"device-spki-%d" % n, b"auth-spki-%d" % n)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'issuer.db'}"


@pytest.fixture
def records(db_url: str) -> Iterator[Records]:
    db = Database(db_url)
    apply_migrations(db)
    r = Records(db, "tester")
    r.initialize(BASE)
    r.record_mailers(MAILERS)
    yield r
    r.close()


# -- database URLs and migrations -------------------------------------------------------------


def test_url_parsing() -> None:
    assert DatabaseUrl.parse("sqlite:///a/b.db") == DatabaseUrl(Dialect.SQLITE, "a/b.db")
    assert DatabaseUrl.parse("/abs/x.db") == DatabaseUrl(Dialect.SQLITE, "/abs/x.db")
    assert DatabaseUrl.parse("postgresql://u@h/db").dialect is Dialect.POSTGRES
    with pytest.raises(IssuerError):
        DatabaseUrl.parse("mysql://u@h/db")
    assert redact_url("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"


def test_migrations_apply_once_and_record_their_version(db_url: str) -> None:
    db = Database(db_url)
    assert current_version(db) == 0
    with pytest.raises(MigrationError):
        require_current(db)
    assert apply_migrations(db) == list(range(1, latest_version() + 1))
    assert apply_migrations(db) == []
    assert current_version(db) == latest_version()
    require_current(db)
    with db.transaction() as tx:
        rows = tx.all("SELECT version FROM schema_version ORDER BY version")
    assert [r[0] for r in rows] == list(range(1, latest_version() + 1))
    db.close()


def test_newer_database_is_refused(db_url: str) -> None:
    db = Database(db_url)
    apply_migrations(db)
    with db.transaction() as tx:
        tx.execute(
            "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
            (latest_version() + 1, "from the future", "2099"),
        )
    with pytest.raises(MigrationError, match="newer"):
        apply_migrations(db)
    with pytest.raises(MigrationError):
        Records.open(db_url, "tester")
    db.close()


def test_records_open_refuses_an_unmigrated_database(db_url: str) -> None:
    with pytest.raises(MigrationError, match="issuer init"):
        Records.open(db_url, "tester")


# -- users, orders, life cycle ----------------------------------------------------------------


def test_users_and_orders(records: Records) -> None:
    user = records.add_user("Ada Lovelace", "12 St James's Square, London")
    assert records.get_user(user.id) == user
    orders = records.request_orders(user.id, 3, mailer_id="mailer-1")
    assert [o.state for o in orders] == [OrderState.REQUESTED] * 3
    assert records.get_order(orders[0].id).mailer_id == "mailer-1"
    with pytest.raises(RecordNotFoundError):
        records.get_user(user.id + 100)
    with pytest.raises(RecordNotFoundError):
        records.request_orders(user.id + 100, mailer_id="m1")
    with pytest.raises(IssuerError):
        records.request_orders(user.id, 1, pin_source="bureau-fax")
    with pytest.raises(IssuerError, match="mailer"):
        records.request_orders(user.id, 1, pin_source="hsm")  # the PIN letter needs a mailer
    with pytest.raises(IssuerError):
        records.add_user(" ", "somewhere")


def test_advance_order_enforces_the_life_cycle(records: Records) -> None:
    user = records.add_user("Bob", "1 Main St")
    (order,) = records.request_orders(user.id, mailer_id="m1")
    with pytest.raises(InvalidTransitionError):
        records.advance_order(order.id, OrderState.SENT_TO_BUREAU)
    with pytest.raises(IssuerError, match="only by sealing"):
        records.advance_order(order.id, OrderState.SEALED)
    records.import_pack("P1", [card(1)])
    with records.db.transaction() as tx:
        assert records.reserve(tx, 10) == [order.id]
    assert records.get_order(order.id).state is OrderState.CARD_ASSIGNED
    with pytest.raises(InvalidTransitionError):
        records.advance_order(order.id, OrderState.PERSONALIZED)
    assert records.get_order(order.id).state is OrderState.CARD_ASSIGNED


# -- packs and FIFO -----------------------------------------------------------------------------


def test_packs_are_used_first_in_first_out(records: Records) -> None:
    user = records.add_user("Carol", "2 Main St")
    records.import_pack("OLD", [card(10), card(11)])
    records.import_pack("NEW", [card(20), card(21)])
    orders = records.request_orders(user.id, 3, mailer_id="m1")
    with records.db.transaction() as tx:
        reserved = records.reserve(tx, 10)
    assert reserved == [o.id for o in orders]
    serials = [records.get_order(o.id).card_serial for o in orders]
    assert serials == [card(10).serial, card(11).serial, card(20).serial]
    stock = {p.pack_serial: p.available for p in records.packs()}
    assert stock == {"OLD": 0, "NEW": 1}


def test_reserve_limited_to_one_pack(records: Records) -> None:
    user = records.add_user("Dan", "3 Main St")
    records.import_pack("OLD", [card(10)])
    records.import_pack("NEW", [card(20)])
    (order,) = records.request_orders(user.id, mailer_id="m1")
    with records.db.transaction() as tx:
        assert records.reserve(tx, 10, pack_serial="NEW") == [order.id]
    assert records.get_order(order.id).card_serial == card(20).serial


def test_unverified_cards_are_never_used(records: Records) -> None:
    user = records.add_user("Eve", "4 Main St")
    bad = CardInit(b"\x01" * 8, b"d", b"a", verified=False)
    records.import_pack("P", [bad])
    records.request_orders(user.id, mailer_id="m1")
    with records.db.transaction() as tx:
        assert records.reserve(tx, 10) == []


def test_pack_import_refuses_duplicates_and_adds_nothing(records: Records) -> None:
    records.import_pack("P1", [card(1), card(2)])
    with pytest.raises(DuplicateRecordError):
        records.import_pack("P1", [card(3)])
    with pytest.raises(DuplicateRecordError):
        records.import_pack("P2", [card(4), card(1)])  # card 1 is in P1 already
    with pytest.raises(DuplicateRecordError):
        records.import_pack("P3", [card(5), card(5)])
    assert [p.pack_serial for p in records.packs()] == ["P1"]
    with pytest.raises(IssuerError):
        records.import_pack("P4", [CardInit(b"\x01\x02", b"d", b"a")])  # serial too short


# -- derivation elements ------------------------------------------------------------------------


def test_derivation_elements_are_unique_monotonic_and_bound(records: Records) -> None:
    alice = records.add_user("Alice", "5 Main St")
    bob = records.add_user("Bob", "6 Main St")
    a1 = records.allocate_derivation_element(alice.id)
    b1 = records.allocate_derivation_element(bob.id)
    a2 = records.allocate_derivation_element(alice.id)
    assert [a1.index, b1.index, a2.index] == [0, 1, 2]
    assert a1.path == f"{BASE}/0"
    assert [e.index for e in records.derivation_elements(alice.id)] == [0, 2]
    assert records.status().next_derivation_index == 3


def test_rolled_back_allocation_leaves_no_binding_and_no_gap_reuse(records: Records) -> None:
    user = records.add_user("Fay", "7 Main St")
    with pytest.raises(RuntimeError), records.db.transaction() as tx:
        records._allocate(tx, [(user.id, None)])
        raise RuntimeError("crash before commit")
    assert records.derivation_elements() == []
    first = records.allocate_derivation_element(user.id)
    second = records.allocate_derivation_element(user.id)
    assert second.index == first.index + 1


def test_derivation_elements_cannot_be_rebound_or_deleted(records: Records) -> None:
    alice = records.add_user("Alice", "5 Main St")
    bob = records.add_user("Bob", "6 Main St")
    element = records.allocate_derivation_element(alice.id)
    with pytest.raises(AppendOnlyViolationError), records.db.transaction() as tx:
        tx.execute(
            "UPDATE derivation_elements SET user_id = ? WHERE idx = ?", (bob.id, element.index)
        )
    with pytest.raises(AppendOnlyViolationError), records.db.transaction() as tx:
        tx.execute("DELETE FROM derivation_elements")
    with pytest.raises(DuplicateRecordError), records.db.transaction() as tx:
        tx.execute(
            "INSERT INTO derivation_elements (idx, path, user_id, bound_at) VALUES (?, ?, ?, ?)",
            (element.index, "m/9", bob.id, "now"),
        )
    assert records.derivation_elements(alice.id) == [element]


def test_failed_order_does_not_free_its_element_or_card(records: Records) -> None:
    user = records.add_user("Gus", "8 Main St")
    records.import_pack("P", [card(1), card(2)])
    (first,) = records.request_orders(user.id, mailer_id="m1")
    with records.db.transaction() as tx:
        records.reserve(tx, 1)
    with records.db.transaction() as tx:  # pretend it was sealed and sent
        tx.execute("UPDATE orders SET state = 'sent_to_bureau' WHERE id = ?", (first.id,))
    records.advance_order(first.id, OrderState.FAILED, note="card broke in the printer")
    (second,) = records.request_orders(user.id, mailer_id="m1")
    with records.db.transaction() as tx:
        records.reserve(tx, 1)
    a, b = records.get_order(first.id), records.get_order(second.id)
    assert a.derivation_index is not None and b.derivation_index is not None
    assert b.derivation_index > a.derivation_index
    assert a.card_serial != b.card_serial


# -- audit log ------------------------------------------------------------------------------------


def test_audit_log_records_actions_and_refuses_changes(records: Records) -> None:
    user = records.add_user("Hal", "9 Main St")
    (order,) = records.request_orders(user.id, mailer_id="m1")
    entries = records.audit_entries()
    assert [e.action for e in entries][-2:] == ["user.add", "order.request"]
    assert entries[-1].order_id == order.id
    assert all(e.actor == "tester" for e in entries)
    with pytest.raises(AppendOnlyViolationError), records.db.transaction() as tx:
        tx.execute("UPDATE audit_log SET actor = 'mallory'")
    with pytest.raises(AppendOnlyViolationError), records.db.transaction() as tx:
        tx.execute("DELETE FROM audit_log WHERE id = ?", (entries[0].id,))
    assert records.audit_entries() == entries
    assert not hasattr(records, "delete_audit_entry")


def test_audit_log_holds_no_names_or_addresses(records: Records) -> None:
    user = records.add_user("Ivy Secretname", "10 Hidden Lane")
    records.request_orders(user.id, mailer_id="m1")
    text = repr(records.audit_entries())
    assert "Secretname" not in text
    assert "Hidden Lane" not in text


def test_status_counts(records: Records) -> None:
    user = records.add_user("Jo", "11 Main St")
    records.request_orders(user.id, 2, mailer_id="m1")
    records.import_pack("P", [card(1)])
    status = records.status()
    assert status.users == 1
    assert status.orders["requested"] == 2
    assert status.packs[0].available == 1
    assert status.schema_version == latest_version()


# -- references, held and cancelled orders ------------------------------------------------------


def test_an_order_naming_an_unknown_mailer_is_refused_when_made(records: Records) -> None:
    user = records.add_user("Dee", "4 Main St")
    with pytest.raises(RecordNotFoundError, match=r"no mailer 'nosuch'.*mailer add"):
        records.request_orders(user.id, 2, mailer_id="nosuch")
    with pytest.raises(RecordNotFoundError, match="no mailer"):
        records.request_orders(user.id, pin_source="none", mailer_id="nosuch")
    assert records.list_orders() == []
    assert records.record_mailers(["nosuch", "m1"]) == ["nosuch"]  # m1 was known already
    assert records.mailers() == sorted([*MAILERS, "nosuch"])
    assert len(records.request_orders(user.id, 2, mailer_id="nosuch")) == 2


def test_cancel_retry_and_their_limits(records: Records) -> None:
    user = records.add_user("Eve", "5 Main St")
    first, second = records.request_orders(user.id, 2, mailer_id="m1")
    with pytest.raises(IssuerError, match="not on hold"):
        records.retry_order(first.id)
    cancelled = records.cancel_order(first.id)
    assert cancelled.state is OrderState.CANCELLED and cancelled.failure_reason == "cancelled"
    with pytest.raises(IssuerError, match="only a requested, held or sealed order"):
        records.cancel_order(first.id)
    with pytest.raises(RecordNotFoundError):
        records.cancel_order(9999)
    records.import_pack("P-C", [card(70)])
    with records.db.transaction() as tx:
        assert records.reserve(tx, 10) == [second.id]
    with pytest.raises(IssuerError, match="being sealed"):  # reserved, not held
        records.cancel_order(second.id)
    with pytest.raises(IssuerError, match="being sealed"):  # the same one cancel, by any path
        records.advance_order(second.id, OrderState.CANCELLED)
    with pytest.raises(IssuerError, match="order cancel"):
        records.advance_order(second.id, OrderState.FAILED)
    actions = [e.action for e in records.audit_entries(order_id=first.id)]
    assert actions == ["order.request", "order.cancelled"]
