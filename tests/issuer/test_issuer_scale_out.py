"""Several sealing hosts on one PostgreSQL (issue 12): four sealers at once, SIGKILLed at random
and replaced, never reuse a derivation element nor seal an order twice, and share the work.

Each sealer stands for a sealing host with its own issuer HSM (the software stand-ins with the
same seed and issuer key, as HSMs restored from the same shares): what is tested here is the
claiming of orders in the shared database (commit point A with FOR UPDATE SKIP LOCKED, each
chunk's orders locked until its commit point B, so a resume skips what a live sealer holds).
bench/scale_out.py runs the same with real SoftHSM tokens and issuer HSM services."""

from __future__ import annotations

import itertools
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sealer_runs import (
    ORDERS,
    check_audit_chain,
    check_invariants,
    prepare_orders,
    read_count,
    worker_argv,
    write_issuer_key,
)

from sealcard.issuer.db import Database
from sealcard.issuer.fake import FakePack, fabricate_pack
from sealcard.issuer.lifecycle import OrderState
from sealcard.issuer.migrations import apply_migrations
from sealcard.issuer.records import Records

pytestmark = pytest.mark.issuer

SEALERS = 4
CHUNK = 4
HSM_DELAY_S = 0.05
KILLS = 8
SEALED = "SELECT COUNT(*) FROM sealed_blobs"


@pytest.fixture(scope="module")
def pack() -> FakePack:
    return fabricate_pack(ORDERS + 20, "SCALE-PACK", rsa_pool=4)


def _start(url: str, key_pem: Path, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        worker_argv(url, key_pem, CHUNK, HSM_DELAY_S, "2", name),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_four_sealers_under_sigkill_share_the_work_and_lose_nothing(
    pg_url: str, pack: FakePack, tmp_path: Path
) -> None:
    prepare_orders(pg_url, pack)
    key_pem = tmp_path / "issuer-key.pem"
    issuer_key = write_issuer_key(key_pem)
    rng = random.Random(0x5CA1E)
    started = 0

    def start() -> subprocess.Popen[str]:
        nonlocal started
        started += 1
        return _start(pg_url, key_pem, f"sealer-{started}")

    running = [start() for _ in range(SEALERS)]
    finished: list[subprocess.Popen[str]] = []
    kills = 0
    # Kill at marks of progress, not at moments: every kill lands while orders remain to be
    # sealed, however fast this machine seals (timed kills missed the work on a quiet one).
    for mark in (ORDERS * (k + 1) // (KILLS + 2) for k in range(KILLS)):
        deadline = time.monotonic() + 120
        while read_count(pg_url, SEALED) < mark and any(p.poll() is None for p in running):
            assert time.monotonic() < deadline, f"the sealers stalled before {mark} sealed"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, HSM_DELAY_S))  # anywhere within a chunk
        alive = [p for p in running if p.poll() is None]
        if not alive:
            break
        victim = rng.choice(alive)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=60)
        running.remove(victim)
        finished.append(victim)
        if victim.returncode == -signal.SIGKILL:
            kills += 1
            running.append(start())  # the host comes back
    for proc in running:
        proc.wait(timeout=300)
        finished.append(proc)
    for proc in finished:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode in (0, -signal.SIGKILL), err  # no ConcurrentUpdateError
        if proc.returncode == 0:
            assert out.splitlines()[-1].startswith("done"), out
    assert kills >= KILLS // 2, f"only {kills} of {KILLS} kills landed before the work was done"
    last = _start(pg_url, key_pem, "sealer-last")  # whatever a kill left reserved
    out, err = last.communicate(timeout=300)
    assert last.returncode == 0, err
    check_invariants(pg_url, pack, issuer_key)
    with Database(pg_url) as db, db.transaction() as tx:
        spans = tx.all(
            "SELECT actor, MIN(at), MAX(at) FROM audit_log WHERE action = 'order.sealed'"
            " GROUP BY actor ORDER BY MIN(at)"
        )
    # the work was shared, by sealers that sealed at the same time (not one after another)
    assert len(spans) >= 2, spans
    assert any(a[2] > b[1] for a, b in itertools.pairwise(spans)), spans


REPLACED = 12  # personalized cards reported lost and replaced, among fresh orders
FRESH = 60


def test_replacements_keep_their_customers_element_under_several_sealers(
    pg_url: str, tmp_path: Path
) -> None:
    """One allocation for every sealer (`Records.reserve`): a replacement order carries the
    element of the card it replaces, every other order gets a fresh one; with four sealers at
    once no element goes to another customer and no order is sealed twice."""
    pack = fabricate_pack(REPLACED * 2 + FRESH + 8, "REPL-PACK", rsa_pool=4)
    key_pem = tmp_path / "issuer-key.pem"
    write_issuer_key(key_pem)
    with Database(pg_url) as db:
        apply_migrations(db)
        records = Records(db, "setup")
        records.initialize()
        records.import_pack(pack.pack_serial, pack.cards)
        records.record_mailers(["m1"])
        users = [records.add_user(f"User {i}", f"{i} Replace Road") for i in range(REPLACED)]
        first = [records.request_orders(u.id, mailer_id="m1")[0] for u in users]
    done = _start(pg_url, key_pem, "first-sealer").communicate(timeout=300)
    assert done[0].splitlines()[-1] == f"done {REPLACED}", done
    with Database(pg_url) as db:
        records = Records(db, "operator")
        for order in first:
            records.advance_order(order.id, OrderState.SENT_TO_BUREAU)
            records.advance_order(order.id, OrderState.PERSONALIZED)
            records.mark_lost(order.id)
        lost = [records.get_order(o.id) for o in first]  # with the elements sealing bound
        replacements = {records.request_replacement(o.id, mailer_id="m1").id: o for o in lost}
        others = [records.add_user(f"New {i}", f"{i} Fresh Road") for i in range(FRESH // 3)]
        for i in range(FRESH):
            records.request_orders(others[i % len(others)].id, mailer_id="m1")
    sealers = [_start(pg_url, key_pem, f"sealer-{i}") for i in range(SEALERS)]
    for proc in sealers:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err  # no ConcurrentUpdateError, no duplicate element
    with Database(pg_url) as db, db.transaction() as tx:
        assert tx.all("SELECT state, COUNT(*) FROM orders GROUP BY state ORDER BY state") == [
            ("lost", REPLACED),
            ("sealed", REPLACED + FRESH),
        ]
        for new_id, old in replacements.items():
            row = tx.one(
                "SELECT o.user_id, o.derivation_index, s.derivation_index FROM orders o"
                " JOIN sealed_blobs s ON s.order_id = o.id WHERE o.id = ?",
                (new_id,),
            )
            assert row == (old.user_id, old.derivation_index, old.derivation_index)
            keys = tx.all(
                "SELECT DISTINCT user_public_key FROM sealed_blobs WHERE order_id IN (?, ?)",
                (old.id, new_id),
            )
            assert len(keys) == 1  # the new card holds the same user key: same addresses
        # an element is one customer's, for good: never sealed for anybody else
        assert (
            tx.all(
                "SELECT s.derivation_index FROM sealed_blobs s JOIN orders o ON o.id = s.order_id"
                " GROUP BY s.derivation_index HAVING COUNT(DISTINCT o.user_id) > 1"
            )
            == []
        )
        assert tx.scalar("SELECT COUNT(*) FROM derivation_elements") == REPLACED + FRESH
        assert tx.scalar("SELECT COUNT(*) FROM sealed_blobs") == 2 * REPLACED + FRESH
        assert tx.scalar("SELECT COUNT(DISTINCT order_id) FROM sealed_blobs") == (
            2 * REPLACED + FRESH
        )
        # each element's blobs went to different cards: the lost one and its replacement
        assert tx.scalar("SELECT COUNT(DISTINCT card_serial) FROM sealed_blobs") == (
            2 * REPLACED + FRESH
        )
    check_audit_chain(pg_url)
