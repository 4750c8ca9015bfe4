"""Kill the sealer (SIGKILL) at random moments in the middle of a batch, run it again, and check
that nothing was lost or duplicated: on SQLite and on PostgreSQL."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sealcard.crypto import bip32, sealed_blob
from sealcard.issuer.db import Database
from sealcard.issuer.fake import FakePack, fabricate_pack
from sealcard.issuer.migrations import apply_migrations
from sealcard.issuer.records import Records
from sealcard.parties import issuer_audit

pytestmark = pytest.mark.issuer

WORKER = Path(__file__).with_name("seal_worker.py")
ORDERS = 160
CHUNK = 8
HSM_DELAY_S = 0.03
KILLS = 6
SEED = bytes(range(64))


def _prepare(url: str, pack: FakePack) -> None:
    with Database(url) as db:
        apply_migrations(db)
        records = Records(db, "test-setup")
        records.initialize()
        records.import_pack(pack.pack_serial, pack.cards)
        records.record_mailers(["m1"])
        users = [records.add_user(f"User {i}", f"{i} Test Road") for i in range(7)]
        for i in range(ORDERS):
            records.request_orders(users[i % len(users)].id, mailer_id="m1")


def _run(url: str, key_pem: Path, kill: tuple[int, float] | None) -> tuple[bool, list[str]]:
    """One worker run. With `kill` = (n, jitter): SIGKILL it `jitter` seconds after its n-th
    commit point B (n = 0: `jitter` seconds after start). Returns (killed, output lines)."""
    argv = [
        sys.executable,
        str(WORKER),
        url,
        SEED.hex(),
        str(key_pem),
        str(CHUNK),
        str(HSM_DELAY_S),
    ]
    return _run_worker(argv, kill)


def _run_worker(argv: list[str], kill: tuple[int, float] | None) -> tuple[bool, list[str]]:
    """Run a sealing process, SIGKILL it as `kill` says; (killed, output lines).

    A worker may finish on its own between the decision to kill it and the signal (when the
    kill was planned after its last commit, it prints "done" and exits 0 during the jitter
    sleep): then it was not killed, and its exit code says so."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        if kill is not None:
            commits, jitter = kill
            while len(lines) < commits:
                line = proc.stdout.readline()
                if not line:
                    break
                lines.append(line.strip())
            if proc.poll() is None and not (lines and lines[-1].startswith("done")):
                time.sleep(jitter)
                proc.send_signal(signal.SIGKILL)  # does nothing if it has exited meanwhile
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines.extend(out.splitlines())
    killed = proc.returncode == -signal.SIGKILL
    assert killed or proc.returncode == 0, err
    return killed, lines


def test_a_worker_that_finishes_during_the_jitter_sleep_was_not_killed() -> None:
    """The flake of issue 7, made certain: the planned kill comes after the worker's last
    commit, and the worker prints "done" and exits 0 while the test sleeps."""
    finishing = "import time; print('sealed 8', flush=True); time.sleep(0.05); print('done 8')"
    killed, lines = _run_worker([sys.executable, "-c", finishing], (1, 0.5))
    assert not killed
    assert lines == ["sealed 8", "done 8"]
    sleeping = "import time; print('sealed 8', flush=True); time.sleep(30)"
    killed, lines = _run_worker([sys.executable, "-c", sleeping], (1, 0.05))
    assert killed
    assert lines == ["sealed 8"]


def _count_state(url: str, state: str) -> int:
    with Database(url) as db, db.read_transaction() as tx:  # waits for no writer
        return int(tx.scalar("SELECT COUNT(*) FROM orders WHERE state = ?", (state,)))


def _check_invariants(url: str, pack: FakePack, issuer_key: ec.EllipticCurvePrivateKey) -> None:
    records = Records.open(url, "checker")
    with records.db as db, db.transaction() as tx:
        assert tx.all("SELECT state, COUNT(*) FROM orders GROUP BY state") == [("sealed", ORDERS)]
        # every order sealed exactly once, with one card, one element, one key, one blob
        assert tx.scalar("SELECT COUNT(*) FROM sealed_blobs") == ORDERS
        assert tx.scalar("SELECT COUNT(*) FROM device_auth_keys") == ORDERS
        assert tx.scalar("SELECT COUNT(*) FROM pin_letters") == ORDERS
        assert tx.scalar("SELECT COUNT(DISTINCT card_serial) FROM orders") == ORDERS
        assert tx.scalar("SELECT COUNT(*) FROM cards WHERE status = 'assigned'") == ORDERS
        # derivation elements: allocated only together with their binding, never twice
        assert tx.scalar("SELECT COUNT(*) FROM derivation_elements") == ORDERS
        assert tx.scalar("SELECT COUNT(DISTINCT order_id) FROM derivation_elements") == ORDERS
        assert tx.scalar("SELECT value FROM counters WHERE name = 'derivation_index'") == ORDERS
        assert (
            tx.scalar(
                "SELECT COUNT(*) FROM orders o"
                " JOIN derivation_elements d ON d.idx = o.derivation_index"
                " JOIN sealed_blobs s ON s.order_id = o.id"
                " WHERE d.order_id = o.id AND d.user_id = o.user_id"
                " AND s.derivation_index = o.derivation_index AND s.card_serial = o.card_serial"
            )
            == ORDERS
        )
        # the audit log saw each step exactly once per order
        for action in ("order.card_assigned", "order.sealed"):
            assert tx.scalar("SELECT COUNT(*) FROM audit_log WHERE action = ?", (action,)) == ORDERS
        rows = tx.all(
            "SELECT s.card_serial, s.blob, s.user_public_key, d.path FROM sealed_blobs s"
            " JOIN derivation_elements d ON d.idx = s.derivation_index"
        )
    root = bip32.ExtendedPrivateKey.from_seed(SEED)
    for serial_hex, blob, user_public_key, path in rows:
        serial = bytes.fromhex(serial_hex)
        payload = sealed_blob.open_blob(
            bytes(blob), serial, pack.device_keys[serial], issuer_key.public_key()
        )
        expected = root.derive(path)
        assert payload.user_private_key == expected.private_key
        assert bytes(user_public_key) == expected.public_key
    _check_audit_chain(url)


class _AuditKey:
    """A software stand-in for the issuer-system HSM's audit key (`issuer audit checkpoint`)."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()


def _check_audit_chain(url: str) -> None:
    """What `sealcard issuer audit checkpoint` then `issuer audit verify` do: after the kills
    (every append locks the chain head until its commit, so concurrent and killed sealers
    leave one unbroken chain), every entry is in the chain, a checkpoint signs its end."""
    key = _AuditKey()
    records = Records.open(url, "auditor")
    with records.db as db:
        with db.transaction() as tx:
            logged = int(tx.scalar("SELECT COUNT(*) FROM audit_log"))
        before = issuer_audit.verify_records(records, key.public_key())
        assert before.ok and before.entries == logged, before
        assert issuer_audit.checkpoint(records, key) is not None
        after = issuer_audit.verify_records(records, key.public_key())
        assert after.ok and after.last_checkpoint_seq == logged and after.unprotected_tail == 0


@pytest.fixture(scope="module")
def pack() -> FakePack:
    return fabricate_pack(ORDERS + 20, "CRASH-PACK", rsa_pool=4)


def test_sigkill_mid_batch_then_resume(any_db_url: str, pack: FakePack, tmp_path: Path) -> None:
    _prepare(any_db_url, pack)
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    key_pem = tmp_path / "issuer-key.pem"
    key_pem.write_bytes(
        issuer_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    rng = random.Random(0x5EA1)
    # first a kill during start-up or the first chunk, then kills at random instants after
    # 1 to 3 commit points B of each run (inside commit A, the HSM call, key generation or
    # commit B of the next chunk)
    plan = [(0, 0.25)] + [
        (rng.randint(1, 3), rng.uniform(0.0, 2 * HSM_DELAY_S)) for _ in range(KILLS)
    ]
    kills_after_commits = 0
    kills_between_a_and_b = 0
    for kill in plan:
        killed, lines = _run(any_db_url, key_pem, kill)
        if not killed:
            break
        kills_after_commits += kill[0] > 0
        kills_between_a_and_b += _count_state(any_db_url, "card_assigned") > 0
    else:
        _, lines = _run(any_db_url, key_pem, None)
    assert lines[-1].startswith("done")
    assert kills_after_commits >= KILLS // 2, "most kills should land after some orders were sealed"
    assert kills_between_a_and_b >= 1, "some kill should leave reserved, unsealed orders"
    _check_invariants(any_db_url, pack, issuer_key)


def test_a_second_sealer_on_sqlite_is_refused_and_the_first_finishes(
    pack: FakePack, tmp_path: Path
) -> None:
    """SQLite takes one writer at a time: a second sealer is refused at once with a clear
    reason (several sealing hosts need PostgreSQL, tests/issuer/test_issuer_scale_out.py)."""
    url = f"sqlite:///{tmp_path / 'issuer.db'}"
    _prepare(url, pack)
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    key_pem = tmp_path / "issuer-key.pem"
    key_pem.write_bytes(
        issuer_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    args = [sys.executable, str(WORKER), url, SEED.hex(), str(key_pem), str(CHUNK), "0.2"]
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert first.stdout is not None
    assert first.stdout.readline().startswith("sealed")  # it holds the database now
    second = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert second.returncode == 1
    assert "another sealer is sealing" in second.stderr and "PostgreSQL" in second.stderr
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert out.splitlines()[-1] == f"done {ORDERS}"
    _check_invariants(url, pack, issuer_key)
