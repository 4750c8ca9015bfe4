"""The tamper-evident audit log (docs/audit.md), on SQLite and PostgreSQL.

Each attack is what someone with write access to the database does: lift the append-only
trigger, change the rows, put the trigger back. `verify_log` must name the first bad entry.
Checkpoints are signed here by a key in the test's memory (the CLI test signs in SoftHSM2).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sealcard.issuer import audit
from sealcard.issuer.db import Database, Dialect
from sealcard.issuer.errors import AppendOnlyViolationError
from sealcard.issuer.migrations import apply_migrations
from sealcard.issuer.records import Records
from sealcard.parties import issuer_audit

pytestmark = pytest.mark.issuer


class MemorySigner:
    """A checkpoint signer whose key lives in the test (the HSM's stand-in)."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.key.public_key()


@pytest.fixture
def records(any_db_url: str) -> Iterator[Records]:
    db = Database(any_db_url)
    apply_migrations(db)
    r = Records(db, "tester")
    r.initialize()
    yield r
    r.close()


def fill(records: Records, n: int) -> None:
    for i in range(n):
        records.audit("test.entry", order_id=i, card_serial=bytes([i % 256] * 4), detail={"i": i})


def verify(records: Records, signer: MemorySigner) -> audit.AuditVerification:
    return issuer_audit.verify_records(records, signer.public_key())


# -- the attacker's SQL: lift the trigger, change rows, put it back ------------------------------

_GUARD = {
    Dialect.SQLITE: (
        ["DROP TRIGGER audit_log_no_update", "DROP TRIGGER audit_log_no_delete"],
        [
            "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
            "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
            "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
            "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
        ],
    ),
    Dialect.POSTGRES: (
        ["DROP TRIGGER audit_log_append_only ON audit_log"],
        [
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION sealcard_refuse_change()"
        ],
    ),
}


def tamper(records: Records, *statements: tuple[str, tuple[object, ...]]) -> None:
    lift, restore = _GUARD[records.db.dialect]
    with records.db.transaction() as tx:
        for sql in lift:
            tx.execute(sql)
        for sql, params in statements:
            tx.execute(sql, params)
        for sql in restore:
            tx.execute(sql)


def row(records: Records, seq: int) -> tuple[object, ...]:
    with records.db.transaction() as tx:
        found = tx.one(
            "SELECT id, at, actor, action, order_id, card_serial, detail, entry_hash"
            " FROM audit_log WHERE seq = ?",
            (seq,),
        )
    assert found is not None
    return found


# -- an intact log -----------------------------------------------------------------------------


def test_intact_log_verifies_and_counts_the_unsigned_tail(records: Records) -> None:
    signer = MemorySigner()
    fill(records, 10)
    cp = issuer_audit.checkpoint(records, signer)
    assert cp is not None and cp.seq == 11  # records.initialize wrote entry 1
    assert issuer_audit.checkpoint(records, signer) is None  # nothing new
    fill(records, 3)
    result = verify(records, signer)
    assert result.ok, result.problem
    assert (result.entries, result.checkpoints, result.last_checkpoint_seq) == (14, 1, 11)
    assert result.unprotected_tail == 3


def test_the_trigger_still_refuses_a_plain_update(records: Records) -> None:
    fill(records, 2)
    issuer_audit.checkpoint(records, MemorySigner())
    with pytest.raises(AppendOnlyViolationError), records.db.transaction() as tx:
        tx.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2", ())
    with pytest.raises(AppendOnlyViolationError), records.db.transaction() as tx:
        tx.execute("UPDATE audit_checkpoints SET key_id = 'x'", ())


# -- the attacks of the issue -------------------------------------------------------------------


def test_rewritten_entry_is_named(records: Records) -> None:
    signer = MemorySigner()
    fill(records, 20)
    issuer_audit.checkpoint(records, signer)
    tamper(records, ("UPDATE audit_log SET actor = ? WHERE seq = ?", ("mallory", 7)))
    result = verify(records, signer)
    assert not result.ok
    assert result.first_bad_seq == 7 and result.first_bad_id == row(records, 7)[0]
    assert "entry 7 " in (result.problem or "")


def test_rewritten_entry_without_any_checkpoint_is_named(records: Records) -> None:
    signer = MemorySigner()
    fill(records, 5)
    tamper(records, ("UPDATE audit_log SET detail = ? WHERE seq = ?", ('{"i": 99}', 4)))
    result = verify(records, signer)
    assert not result.ok and result.first_bad_seq == 4


def test_deleted_entry_is_named(records: Records) -> None:
    signer = MemorySigner()
    fill(records, 20)
    tamper(records, ("DELETE FROM audit_log WHERE seq = ?", (9,)))
    result = verify(records, signer)
    assert not result.ok and result.first_bad_seq == 9
    assert "entry 9 is missing" in (result.problem or "")


def test_reordered_entries_are_named(records: Records) -> None:
    signer = MemorySigner()
    fill(records, 20)
    first, second = row(records, 5), row(records, 12)
    tamper(
        records,
        ("UPDATE audit_log SET seq = ? WHERE id = ?", (-1, first[0])),
        ("UPDATE audit_log SET seq = ? WHERE id = ?", (5, second[0])),
        ("UPDATE audit_log SET seq = ? WHERE id = ?", (12, first[0])),
    )
    result = verify(records, signer)
    assert not result.ok and result.first_bad_seq == 5


def test_inserted_entry_is_found(records: Records) -> None:
    """The attacker makes room at seq 6 and inserts an entry whose hash he computes himself
    (the formula is public): the chain breaks at the entry after it."""
    signer = MemorySigner()
    fill(records, 10)
    with records.db.transaction() as tx:
        chain_id = audit.read_head(tx).chain_id
    previous = bytes(row(records, 5)[7])  # type: ignore[arg-type]
    fields: audit.EntryFields = (
        "2026-01-01T00:00:00+00:00",
        "mallory",
        "order.request",
        1,
        None,
        None,
    )
    forged = audit.entry_hash(previous, 6, fields)
    shifts = [
        ("UPDATE audit_log SET seq = ? WHERE seq = ?", (-seq, seq)) for seq in range(6, 12)
    ] + [("UPDATE audit_log SET seq = ? WHERE seq = ?", (seq + 1, -seq)) for seq in range(6, 12)]
    insert = (
        "INSERT INTO audit_log (seq, at, actor, action, order_id, card_serial, detail,"
        " entry_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (6, *fields, forged),
    )
    tamper(records, *shifts, insert)
    assert chain_id  # the genesis is bound to it; nothing to forge there
    result = verify(records, signer)
    assert not result.ok and result.first_bad_seq in (6, 7)


def test_row_inserted_outside_the_chain_is_named(records: Records) -> None:
    signer = MemorySigner()
    fill(records, 3)
    with records.db.transaction() as tx:  # INSERT needs no trigger to be lifted
        tx.execute(
            "INSERT INTO audit_log (at, actor, action) VALUES (?, ?, ?)",
            ("2026-01-01", "mallory", "user.add"),
        )
    result = verify(records, signer)
    assert not result.ok and "not in the chain" in (result.problem or "")


def test_rewrite_with_recomputed_hashes_is_caught_by_the_checkpoint(records: Records) -> None:
    """Without the HSM key the attacker can recompute every hash after his change; the signed
    checkpoint still disagrees, and verify names the first entry it no longer vouches for."""
    signer = MemorySigner()
    fill(records, 10)
    issuer_audit.checkpoint(records, signer)  # at entry 11
    fill(records, 10)
    issuer_audit.checkpoint(records, signer)  # at entry 21
    with records.db.transaction() as tx:
        head = audit.read_head(tx)
        rows = tx.all(
            "SELECT id, at, actor, action, order_id, card_serial, detail FROM audit_log"
            " ORDER BY seq"
        )
    previous = audit.genesis_hash(head.chain_id)
    statements: list[tuple[str, tuple[object, ...]]] = []
    for seq, r in enumerate(rows, start=1):
        actor = "mallory" if seq == 15 else str(r[2])
        fields: audit.EntryFields = (str(r[1]), actor, str(r[3]), r[4], r[5], r[6])
        previous = audit.entry_hash(previous, seq, fields)
        statements.append(
            ("UPDATE audit_log SET actor = ?, entry_hash = ? WHERE id = ?", (actor, previous, r[0]))
        )
    statements.append(("UPDATE audit_chain SET head_hash = ? WHERE id = 1", (previous,)))
    tamper(records, *statements)
    result = verify(records, signer)
    assert not result.ok
    assert result.first_bad_seq == 12 and result.last_checkpoint_seq == 11
    assert "checkpoint signed at entry 21" in (result.problem or "")


def test_tail_cut_below_a_checkpoint_is_named(records: Records) -> None:
    signer = MemorySigner()
    fill(records, 10)
    issuer_audit.checkpoint(records, signer)
    tamper(records, ("DELETE FROM audit_log WHERE seq > ?", (8,)))
    result = verify(records, signer)
    assert not result.ok and result.first_bad_seq == 9
    assert "deleted" in (result.problem or "")


def test_tail_cut_after_the_last_checkpoint_shows_in_the_head(records: Records) -> None:
    signer = MemorySigner()
    fill(records, 10)
    tamper(records, ("DELETE FROM audit_log WHERE seq > ?", (8,)))
    result = verify(records, signer)
    assert not result.ok and result.first_bad_seq == 9


def test_forged_checkpoint_is_refused(records: Records) -> None:
    signer, mallory = MemorySigner(), MemorySigner()
    fill(records, 5)
    issuer_audit.checkpoint(records, mallory)
    result = verify(records, signer)
    assert not result.ok and "valid signature" in (result.problem or "")


# -- export --------------------------------------------------------------------------------------


def test_export_verifies_alone_and_shows_tampering(records: Records, tmp_path: Path) -> None:
    signer = MemorySigner()
    fill(records, 30)
    issuer_audit.checkpoint(records, signer)
    out = tmp_path / "audit.jsonl"
    assert issuer_audit.export(records, out) == (31, 1)
    with pytest.raises(Exception, match="exists"):
        issuer_audit.export(records, out)
    assert issuer_audit.verify_export(out, signer.public_key()).ok
    lines = out.read_text().splitlines()
    lines[10] = lines[10].replace('"tester"', '"mallory"')
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    result = issuer_audit.verify_export(bad, signer.public_key())
    assert not result.ok and result.first_bad_seq == 10
    dropped = tmp_path / "dropped.jsonl"
    dropped.write_text("\n".join(lines[:5] + lines[6:]) + "\n")
    assert issuer_audit.verify_export(dropped, signer.public_key()).first_bad_seq == 5


# -- migration of an existing log ------------------------------------------------------------------


def test_migration_chains_existing_entries(any_db_url: str) -> None:
    db = Database(any_db_url)
    try:
        apply_migrations(db, target=1)
        with db.transaction() as tx:
            for i in range(25):
                tx.execute(
                    "INSERT INTO audit_log (at, actor, action, order_id, card_serial, detail)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (f"2026-01-01T00:00:{i:02d}", "old", "order.request", i, None, '{"x": 1}'),
                )
        apply_migrations(db)
        records = Records(db, "tester")
        signer = MemorySigner()
        fill(records, 2)
        result = verify(records, signer)
        assert result.ok, result.problem
        assert result.entries == 27
        with db.transaction() as tx:
            seqs = [r[0] for r in tx.all("SELECT seq FROM audit_log ORDER BY id")]
        assert seqs == list(range(1, 28))
    finally:
        db.close()


# -- concurrent appenders (PostgreSQL) -------------------------------------------------------------

_APPENDER = textwrap.dedent(
    """
    import sys
    from sealcard.issuer.db import Database
    from sealcard.issuer.records import Records
    url, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    records = Records(Database(url), who)
    for i in range(n):
        if i % 5 == 4:
            user = records.add_user(f"{who} {i}", "somewhere")  # a business write + its entry
            records.request_orders(user.id, 3, pin_source="none")  # three entries in one step
        else:
            records.audit("test.concurrent", detail={"who": who, "i": i})
    records.close()
    """
)


def test_concurrent_appenders_keep_one_linear_chain(pg_url: str) -> None:
    db = Database(pg_url)
    apply_migrations(db)
    records = Records(db, "tester")
    records.initialize()
    processes, per_process = 4, 40
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _APPENDER, pg_url, f"writer{k}", str(per_process)],
            stderr=subprocess.PIPE,
        )
        for k in range(processes)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    signer = MemorySigner()
    issuer_audit.checkpoint(records, signer)
    result = verify(records, signer)
    assert result.ok, result.problem
    # per process: 32 single entries, 8 x (user.add + 3 order.request)
    assert result.entries == 1 + processes * (per_process // 5 * 4 + per_process // 5 * 4)
    with db.transaction() as tx:
        assert tx.scalar("SELECT COUNT(*) FROM audit_log") == result.entries
    records.close()


def test_public_key_pem_round_trip() -> None:
    signer = MemorySigner()
    pem = signer.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert audit.key_id(audit.load_public_key(pem)) == audit.key_id(signer.public_key())
    with pytest.raises(Exception, match="P-256"):
        audit.load_public_key(
            ec.generate_private_key(ec.SECP384R1())
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
