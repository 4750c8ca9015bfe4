"""Schema 4: the audit log becomes a hash chain with signed checkpoints (docs/audit.md).

Adds ``seq`` and ``entry_hash`` to ``audit_log``, the one-row chain head ``audit_chain`` and the
append-only ``audit_checkpoints``. Rows written before this step are chained here, in id order,
under a fresh random chain id (the append-only trigger is lifted for that one UPDATE, inside
this migration's transaction, and put back).
"""

from __future__ import annotations

import secrets

from sealcard.issuer.audit import CHAIN_ID_LENGTH, chain_existing, genesis_hash
from sealcard.issuer.db import Dialect, Tx

VERSION = 4
DESCRIPTION = "audit log hash chain and signed checkpoints"

_TABLES = """
ALTER TABLE audit_log ADD COLUMN seq {BIGINT};
ALTER TABLE audit_log ADD COLUMN entry_hash {BLOB};
CREATE UNIQUE INDEX audit_log_by_seq ON audit_log (seq);
CREATE TABLE audit_chain (
    id {INT} PRIMARY KEY CHECK (id = 1),
    chain_id TEXT NOT NULL,
    seq {BIGINT} NOT NULL CHECK (seq >= 0),
    head_hash {BLOB} NOT NULL
);
CREATE TABLE audit_checkpoints (
    seq {BIGINT} PRIMARY KEY CHECK (seq >= 1),
    entry_hash {BLOB} NOT NULL,
    signed_at TEXT NOT NULL,
    key_id TEXT NOT NULL,
    signature {BLOB} NOT NULL
)
"""


def _guards(dialect: Dialect) -> list[str]:
    if dialect is Dialect.SQLITE:
        return [
            "CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints "
            "BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END",
            "CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints "
            "BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END",
        ]
    return [
        "CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON"
        " audit_checkpoints FOR EACH ROW EXECUTE FUNCTION sealcard_refuse_change()",
        "CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints"
        " FOR EACH STATEMENT EXECUTE FUNCTION sealcard_refuse_change()",
    ]


def statements(dialect: Dialect) -> list[str]:
    """The SQL of schema 4 for `dialect` (the row chaining is `migrate_rows`)."""
    text = _TABLES.format(**dialect.types)
    return [s.strip() for s in text.split(";") if s.strip()] + _guards(dialect)


# The update guard of schema 1, lifted while existing rows get their seq and hash.
_LIFT = {
    Dialect.SQLITE: ["DROP TRIGGER audit_log_no_update"],
    Dialect.POSTGRES: ["DROP TRIGGER audit_log_append_only ON audit_log"],
}
_RESTORE = {
    Dialect.SQLITE: [
        "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
    ],
    Dialect.POSTGRES: [
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION sealcard_refuse_change()"
    ],
}


def migrate_rows(tx: Tx) -> None:
    """Chain the existing entries and write the chain head."""
    chain_id = secrets.token_bytes(CHAIN_ID_LENGTH)
    rows = tx.all(
        "SELECT id, at, actor, action, order_id, card_serial, detail FROM audit_log ORDER BY id"
    )
    seq, head = 0, genesis_hash(chain_id)
    if rows:
        for statement in _LIFT[tx.dialect]:
            tx.execute(statement)
        seq, head = chain_existing(tx, chain_id, rows)
        for statement in _RESTORE[tx.dialect]:
            tx.execute(statement)
    tx.execute(
        "INSERT INTO audit_chain (id, chain_id, seq, head_hash) VALUES (1, ?, ?, ?)",
        (chain_id.hex(), seq, head),
    )
