"""A sealer's claim on the orders it has just reserved (PostgreSQL, several sealers).

Another transaction may hold those rows for a moment without claiming them: another sealer's
reserve, whose `SELECT .. FOR UPDATE` waited on them while they were being reserved, keeps the
row locks after its re-check drops them. A claim that skipped locked rows then left the orders
reserved and unsealed while every sealer ended "done" (seen once in a fresh-clone CI run of
tests/issuer/test_issuer_scale_out.py: 3 of 72 orders left `card_assigned`). Here the moment
is made certain: another connection holds the rows between commit point A and the claim.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from software_hsm import SoftwareDeviceAuthKeys, SoftwareIssuerHsm

from sealcard.issuer.batch import seal_orders
from sealcard.issuer.db import Database
from sealcard.issuer.fake import fabricate_pack
from sealcard.issuer.lifecycle import OrderState
from sealcard.issuer.migrations import apply_migrations
from sealcard.issuer.records import Records, SealWork

pytestmark = pytest.mark.issuer

BASE = "m/44'/0'/0'/0"
SEED = bytes(range(32))
ORDERS = 6
HOLD_S = 0.5


class HeldAfterReserve(Records):
    """Records whose first claim of its own reserved orders finds them held by another
    connection (which takes them right after commit point A and lets go `HOLD_S` later)."""

    def __init__(self, db: Database, url: str) -> None:
        super().__init__(db, "sealer")
        self.url = url
        self.held = threading.Event()
        self.holder: threading.Thread | None = None

    def _hold(self, ids: list[int]) -> None:
        marks = ", ".join("?" for _ in ids)
        with Database(self.url) as other, other.transaction() as tx:
            # waits for commit point A, then holds the rows without claiming them
            tx.all(f"SELECT id FROM orders WHERE id IN ({marks}) FOR UPDATE", ids)
            self.held.set()
            time.sleep(HOLD_S)

    def reserve(self, tx: Any, limit: int, **where: Any) -> list[int]:
        ids = super().reserve(tx, limit, **where)
        if ids and self.holder is None:
            self.holder = threading.Thread(target=self._hold, args=(ids,), daemon=True)
            self.holder.start()
        return ids

    def assigned_work(self, tx: Any, limit: int, **where: Any) -> list[SealWork]:
        order_ids: Sequence[int] | None = where.get("order_ids")
        if order_ids is not None and self.holder is not None and not self.held.is_set():
            assert self.held.wait(10), "the other connection never took the rows"
        return super().assigned_work(tx, limit, **where)


@pytest.fixture
def records(pg_url: str) -> Iterator[HeldAfterReserve]:
    db = Database(pg_url)
    apply_migrations(db)
    held = HeldAfterReserve(db, pg_url)
    held.initialize(BASE)
    yield held
    held.close()


def test_orders_held_a_moment_after_reservation_are_still_sealed_by_their_sealer(
    records: HeldAfterReserve,
) -> None:
    pack = fabricate_pack(ORDERS, "CLAIM-PACK", rsa_pool=2)
    records.import_pack(pack.pack_serial, pack.cards)
    records.record_mailers(["m1"])
    user = records.add_user("Ada", "1 Main St")
    ids = [o.id for o in records.request_orders(user.id, ORDERS, mailer_id="m1")]
    report = seal_orders(
        records, SoftwareDeviceAuthKeys(), SoftwareIssuerHsm(SEED), chunk_size=ORDERS
    )
    assert records.held.is_set()  # the rows were held between commit point A and the claim
    assert report.sealed == ORDERS and report.stopped == "done"
    assert [records.get_order(i).state for i in ids] == [OrderState.SEALED] * ORDERS


def test_an_order_a_sealer_holds_is_waited_for_not_reported_missing(pg_url: str) -> None:
    """Cancelling (or retrying, advancing, replacing) an order that a sealer's chunk holds
    waits for the chunk, then sees the order as the sealer left it: before, the skipped row
    made the command answer "no order N" for an order that exists."""
    db = Database(pg_url)
    apply_migrations(db)
    records = Records(db, "operator")
    records.initialize(BASE)
    user = records.add_user("Ada", "1 Main St")
    (order,) = records.request_orders(user.id, 1, pin_source="none")
    held = threading.Event()

    def hold() -> None:
        with Database(pg_url) as other, other.transaction() as tx:
            tx.all("SELECT id FROM orders WHERE id = ? FOR UPDATE", (order.id,))
            held.set()
            time.sleep(HOLD_S)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(10)
    cancelled = records.cancel_order(order.id, note="customer left")  # waits for the holder
    assert cancelled.state is OrderState.CANCELLED
    holder.join(10)
    records.close()
