"""What the kill-and-resume tests of the sealer share (tests/issuer/test_issuer_crash.py on
SQLite and PostgreSQL, tests/issuer/test_issuer_scale_out.py with several sealers at once):
the records they start from, the issuer key their workers seal with, a count that waits for
no writer, and the checks that nothing was lost, sealed twice or left out of the audit chain.

The sealing runs themselves are tests/issuer/seal_worker.py (`WORKER`), with the software HSM
stand-ins holding `SEED`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sealcard.crypto import bip32, sealed_blob
from sealcard.issuer.db import Database
from sealcard.issuer.fake import FakePack
from sealcard.issuer.migrations import apply_migrations
from sealcard.issuer.records import Records
from sealcard.parties import issuer_audit

WORKER = Path(__file__).resolve().parents[1] / "issuer" / "seal_worker.py"
ORDERS = 160  # prepare_orders requests this many; check_invariants expects them all sealed
SEED = bytes(range(64))


def worker_argv(url: str, key_pem: Path, chunk: int, delay_s: float, *more: str) -> list[str]:
    """The command line of one sealing run (seal_worker.py's usage; `more`: IN_FLIGHT, ACTOR)."""
    return [
        sys.executable,
        str(WORKER),
        url,
        SEED.hex(),
        str(key_pem),
        str(chunk),
        str(delay_s),
        *more,
    ]


def prepare_orders(url: str, pack: FakePack) -> None:
    """A fresh issuer database with `pack` in stock and ORDERS orders of 7 users."""
    with Database(url) as db:
        apply_migrations(db)
        records = Records(db, "test-setup")
        records.initialize()
        records.import_pack(pack.pack_serial, pack.cards)
        records.record_mailers(["m1"])
        users = [records.add_user(f"User {i}", f"{i} Test Road") for i in range(7)]
        for i in range(ORDERS):
            records.request_orders(users[i % len(users)].id, mailer_id="m1")


def write_issuer_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """A new issuer key, written to `path` (PKCS#8 PEM) for the workers to seal with."""
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return key


def read_count(url: str, sql: str, params: tuple[Any, ...] = ()) -> int:
    """A COUNT while sealers run: a read transaction, which waits for no writer."""
    with Database(url) as db, db.read_transaction() as tx:
        return int(tx.scalar(sql, params))


def check_invariants(url: str, pack: FakePack, issuer_key: ec.EllipticCurvePrivateKey) -> None:
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
    check_audit_chain(url)


class _AuditKey:
    """A software stand-in for the issuer-system HSM's audit key (`issuer audit checkpoint`)."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()


def check_audit_chain(url: str) -> None:
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
