"""Schema 2 on SQLite: derivation elements belong to customers, cards to orders; lost,
terminated and cancelled orders; replacement with the same element (same user key); activation
orders are never taken by the bureau's batch; the migration from schema 1 keeps every row."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from schema_one import write_schema_1_stock
from software_hsm import SoftwareDeviceAuthKeys, SoftwareIssuerHsm

from sealcard.issuer.batch import seal_orders
from sealcard.issuer.db import Database
from sealcard.issuer.errors import (
    CardAlreadyUsedError,
    DuplicateRecordError,
    InvalidTransitionError,
    IssuerError,
)
from sealcard.issuer.fake import FakePack, fabricate_pack
from sealcard.issuer.lifecycle import OrderState
from sealcard.issuer.migrations import apply_migrations, latest_version
from sealcard.issuer.records import ACTIVATION_PACK, CardInit, Records

BASE = "m/44'/0'/0'/0"
SEED = bytes(range(32))


@pytest.fixture
def records(tmp_path: Path) -> Iterator[Records]:
    db = Database(f"sqlite:///{tmp_path / 'issuer.db'}")
    apply_migrations(db)
    r = Records(db, "tester")
    r.initialize(BASE)
    r.record_mailers(["m1", "post"])  # what `issuer hsm mailer add` does (orders name them)
    yield r
    r.close()


@pytest.fixture(scope="module")
def pack() -> FakePack:
    return fabricate_pack(6, "P-LIFE", rsa_pool=2)


def _personalized(records: Records, pack: FakePack, hsm: SoftwareIssuerHsm) -> tuple[int, int]:
    """(user id, order id) of one order sealed, exported and personalized."""
    records.import_pack(pack.pack_serial, pack.cards)
    user = records.add_user("Ada", "1 Main St")
    (order,) = records.request_orders(user.id, mailer_id="m1")
    seal_orders(records, SoftwareDeviceAuthKeys(), hsm)
    records.advance_order(order.id, OrderState.SENT_TO_BUREAU)
    records.advance_order(order.id, OrderState.PERSONALIZED)
    return user.id, order.id


def test_replacement_reuses_the_element_and_gives_the_same_user_key(
    records: Records, pack: FakePack
) -> None:
    hsm = SoftwareIssuerHsm(SEED)
    user_id, old = _personalized(records, pack, hsm)
    first = records.sealed_output(old)
    with pytest.raises(IssuerError, match="only a lost or terminated card"):
        records.request_replacement(old, mailer_id="m1")
    records.mark_lost(old, note="stolen on the train")
    new = records.request_replacement(old, mailer_id="m1")
    assert new.replaces_order_id == old and new.user_id == user_id
    assert new.derivation_index == records.get_order(old).derivation_index
    with pytest.raises(DuplicateRecordError, match="already carries"):
        records.request_replacement(old, mailer_id="m1")  # one live card per element
    seal_orders(records, SoftwareDeviceAuthKeys(), hsm)
    second = records.sealed_output(new.id)
    assert second.card_serial != first.card_serial  # a new card ...
    assert second.user_public_key == first.user_public_key  # ... with the same user key
    assert second.derivation_path == first.derivation_path
    assert len(records.derivation_elements(user_id)) == 1  # no new element was allocated
    actions = [e.action for e in records.audit_entries(order_id=new.id)]
    assert actions[:2] == ["order.replacement", "order.card_assigned"]


def test_an_element_is_never_used_for_another_customer(records: Records, pack: FakePack) -> None:
    hsm = SoftwareIssuerHsm(SEED)
    _, old = _personalized(records, pack, hsm)
    index = records.get_order(old).derivation_index
    other = records.add_user("Eve", "2 Side St")
    for sql in (
        "INSERT INTO orders (user_id, state, pin_source, channel, derivation_index, created_at,"
        " updated_at) VALUES (?, 'requested', 'none', 'bureau', ?, 'now', 'now')",
        "UPDATE orders SET user_id = ? WHERE derivation_index = ?",
    ):
        with pytest.raises(IssuerError, match="its own user"), records.db.transaction() as tx:
            tx.execute(sql, (other.id, index))
    assert records.get_order(old).user_id != other.id


def test_lost_terminated_and_cancelled(records: Records, pack: FakePack) -> None:
    hsm = SoftwareIssuerHsm(SEED)
    user_id, order_id = _personalized(records, pack, hsm)
    assert records.mark_lost(order_id).state is OrderState.LOST
    with pytest.raises(IssuerError, match="only a card that was personalized"):
        records.mark_lost(order_id)
    assert records.mark_terminated(order_id).state is OrderState.TERMINATED
    with pytest.raises(InvalidTransitionError):
        records.mark_terminated(order_id)
    (requested,) = records.request_orders(user_id, pin_source="none")
    assert records.cancel_order(requested.id, note="customer left").state is OrderState.CANCELLED
    with pytest.raises(IssuerError, match="only a requested, held or sealed order"):
        records.cancel_order(order_id)
    actions = [e.action for e in records.audit_entries(order_id=order_id)]
    assert "order.lost" in actions and "order.terminated" in actions


def test_the_bureau_batch_leaves_activation_orders_alone(records: Records, pack: FakePack) -> None:
    records.import_pack(pack.pack_serial, pack.cards)
    user = records.add_user("Ada", "1 Main St")
    (activation,) = records.request_orders(user.id, pin_source="none", channel="activation")
    (bureau,) = records.request_orders(user.id, pin_source="none")
    report = seal_orders(records, SoftwareDeviceAuthKeys(), SoftwareIssuerHsm(SEED))
    assert report.sealed == 1 and report.stopped == "done"
    assert records.get_order(bureau.id).state is OrderState.SEALED
    assert records.get_order(activation.id).state is OrderState.REQUESTED
    assert records.activation_order(user.id) == records.get_order(activation.id)


def test_activation_binds_the_presented_card_once(records: Records, pack: FakePack) -> None:
    records.import_pack(pack.pack_serial, pack.cards)
    user = records.add_user("Ada", "1 Main St")
    first, second = records.request_orders(user.id, 2, pin_source="none", channel="activation")
    (unknown,) = fabricate_pack(1, rsa_pool=1).cards
    with records.db.transaction() as tx:
        records.bind_activation_card(tx, first.id, unknown)  # unknown card: joins the records
    order = records.get_order(first.id)
    assert order.state is OrderState.CARD_ASSIGNED and order.card_serial == unknown.serial
    stored = records.card(unknown.serial)
    assert stored is not None and stored.pack_serial == ACTIVATION_PACK
    assert stored.status == "assigned"
    with pytest.raises(CardAlreadyUsedError), records.db.transaction() as tx:
        records.bind_activation_card(tx, second.id, unknown)
    in_stock = pack.cards[0]
    forged = CardInit(in_stock.serial, b"other device key", in_stock.issuer_auth_public_key_der)
    with pytest.raises(IssuerError, match="other keys"), records.db.transaction() as tx:
        records.bind_activation_card(tx, second.id, forged)
    assert records.get_order(second.id).state is OrderState.REQUESTED  # nothing recorded
    with records.db.transaction() as tx:
        records.bind_activation_card(tx, second.id, in_stock)  # a stock card leaves the stock
    assert (records.card(in_stock.serial) or pytest.fail()).status == "assigned"
    report = seal_orders(
        records, SoftwareDeviceAuthKeys(), SoftwareIssuerHsm(SEED), order_ids=[first.id]
    )
    assert report.sealed == 1 and records.get_order(first.id).state is OrderState.SEALED
    assert records.get_order(second.id).state is OrderState.CARD_ASSIGNED  # not asked for


def test_bulk_users_and_orders_all_or_nothing(records: Records) -> None:
    users = records.add_users([("C1", "Ada", "1 Main St"), ("C2", "Bob", "2 Main St")])
    assert [u.customer_ref for u in users] == ["C1", "C2"]
    assert records.users_by_ref(["C1", "C2", "C3"]) == {"C1": users[0].id, "C2": users[1].id}
    with pytest.raises(DuplicateRecordError, match="exist already"):
        records.add_users([("C3", "Cy", "3 Main St"), ("C1", "Ada again", "1 Main St")])
    assert records.users_by_ref(["C3"]) == {}
    orders = records.add_orders(
        [(users[0].id, "none", None, "activation"), (users[1].id, "hsm", "post", "bureau")]
    )
    assert [o.channel for o in orders] == ["activation", "bureau"]
    with pytest.raises(IssuerError):
        records.add_orders([(users[0].id, "none", None, "carrier-pigeon")])
    with pytest.raises(IssuerError):
        records.add_orders([(users[0].id, "none", None, "bureau"), (99999, "none", None, "bureau")])
    assert len(records.list_orders()) == 2


def test_migration_from_schema_1_keeps_every_row(tmp_path: Path, pack: FakePack) -> None:
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    apply_migrations(db, target=1)
    write_schema_1_stock(db, BASE, pack)
    with db.transaction() as tx:  # schema 1's own columns: written by hand
        tx.execute("INSERT INTO users (name, address, created_at) VALUES ('Ada', 'x', 'then')")
        tx.execute("UPDATE counters SET value = 3 WHERE name = 'derivation_index'")
        ids = []
        for i, card in enumerate(pack.cards[:3]):
            ids.append(
                int(
                    tx.scalar(
                        "INSERT INTO orders (user_id, state, pin_source, card_serial,"
                        " derivation_index, created_at, updated_at)"
                        " VALUES (1, 'card_assigned', 'none', ?, ?, 'then', 'then') RETURNING id",
                        (card.serial.hex(), i),
                    )
                )
            )
            tx.execute(
                "INSERT INTO derivation_elements (idx, path, user_id, order_id, bound_at)"
                " VALUES (?, ?, 1, ?, 'then')",
                (i, f"{BASE}/{i}", ids[-1]),
            )
            tx.execute(
                "UPDATE cards SET status = 'assigned' WHERE serial = ?", (card.serial.hex(),)
            )
    assert apply_migrations(db) == list(range(2, latest_version() + 1))
    records = Records(db, "tester")
    orders = [records.get_order(i) for i in ids]
    assert [o.derivation_index for o in orders] == [0, 1, 2]
    assert all(o.channel == "bureau" and o.state is OrderState.CARD_ASSIGNED for o in orders)
    with db.transaction() as tx:
        assert tx.all("PRAGMA foreign_key_check") == []
        assert tx.scalar("PRAGMA foreign_keys") == 1
        names = {str(r[0]) for r in tx.all("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"orders_by_state", "orders_by_derivation_index"} <= names
    report = seal_orders(records, SoftwareDeviceAuthKeys(), SoftwareIssuerHsm(SEED))
    assert report.resumed == 3  # the orders reserved before the migration are sealed after it
    db.close()
