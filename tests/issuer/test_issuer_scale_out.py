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
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from test_issuer_crash import SEED, WORKER, _check_invariants, _prepare

from sealcard.issuer.db import Database
from sealcard.issuer.fake import FakePack, fabricate_pack

pytestmark = pytest.mark.issuer

ORDERS = 160  # as test_issuer_crash (its helpers prepare and check this many)
SEALERS = 4
CHUNK = 4
HSM_DELAY_S = 0.05
KILLS = 8


@pytest.fixture(scope="module")
def pack() -> FakePack:
    return fabricate_pack(ORDERS + 20, "SCALE-PACK", rsa_pool=4)


def _start(url: str, key_pem: Path, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            str(WORKER),
            url,
            SEED.hex(),
            str(key_pem),
            str(CHUNK),
            str(HSM_DELAY_S),
            "2",
            name,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_four_sealers_under_sigkill_share_the_work_and_lose_nothing(
    pg_url: str, pack: FakePack, tmp_path: Path
) -> None:
    _prepare(pg_url, pack)
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    key_pem = tmp_path / "issuer-key.pem"
    key_pem.write_bytes(
        issuer_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    rng = random.Random(0x5CA1E)
    started = 0

    def start() -> subprocess.Popen[str]:
        nonlocal started
        started += 1
        return _start(pg_url, key_pem, f"sealer-{started}")

    running = [start() for _ in range(SEALERS)]
    finished: list[subprocess.Popen[str]] = []
    kills = 0
    while kills < KILLS and running:
        time.sleep(rng.uniform(0.1, 0.4))
        victim = rng.choice(running)
        if victim.poll() is None:
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
    assert kills >= KILLS // 2, "the sealers finished before most kills: raise ORDERS"
    last = _start(pg_url, key_pem, "sealer-last")  # whatever a kill left reserved
    out, err = last.communicate(timeout=300)
    assert last.returncode == 0, err
    _check_invariants(pg_url, pack, issuer_key)
    with Database(pg_url) as db, db.transaction() as tx:
        spans = tx.all(
            "SELECT actor, MIN(at), MAX(at) FROM audit_log WHERE action = 'order.sealed'"
            " GROUP BY actor ORDER BY MIN(at)"
        )
    # the work was shared, by sealers that sealed at the same time (not one after another)
    assert len(spans) >= 2, spans
    assert any(a[2] > b[1] for a, b in itertools.pairwise(spans)), spans
