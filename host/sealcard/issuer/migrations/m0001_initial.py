"""Schema 1: packs and cards, users, derivation elements, orders, sealing output, audit log."""

from __future__ import annotations

from sealcard.issuer.db import Dialect

VERSION = 1
DESCRIPTION = "initial schema"

_TABLES = """
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value {BIGINT} NOT NULL CHECK (value >= 0)
);
INSERT INTO counters (name, value) VALUES ('derivation_index', 0);
CREATE TABLE users (
    id {ID},
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE packs (
    seq {ID},
    pack_serial TEXT NOT NULL UNIQUE,
    imported_at TEXT NOT NULL,
    card_count {INT} NOT NULL,
    source TEXT NOT NULL
);
CREATE TABLE cards (
    serial TEXT PRIMARY KEY,
    pack_seq {BIGINT} NOT NULL REFERENCES packs (seq),
    position {INT} NOT NULL,
    device_public_key {BLOB} NOT NULL,
    issuer_auth_public_key {BLOB} NOT NULL,
    device_key_cert {BLOB},
    issuer_auth_cert {BLOB},
    signed_device_key {BLOB},
    verified {INT} NOT NULL CHECK (verified IN (0, 1)),
    status TEXT NOT NULL CHECK (status IN ('available', 'assigned')),
    UNIQUE (pack_seq, position)
);
CREATE INDEX cards_fifo ON cards (status, pack_seq, position);
CREATE TABLE orders (
    id {ID},
    user_id {BIGINT} NOT NULL REFERENCES users (id),
    state TEXT NOT NULL CHECK (state IN ('requested', 'card_assigned', 'sealed',
        'sent_to_bureau', 'personalized', 'failed', 'shipped', 'pin_mailed')),
    pin_source TEXT NOT NULL CHECK (pin_source IN ('hsm', 'none')),
    mailer_id TEXT,
    card_serial TEXT UNIQUE REFERENCES cards (serial),
    derivation_index {BIGINT} UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX orders_by_state ON orders (state, id);
CREATE TABLE derivation_elements (
    idx {BIGINT} PRIMARY KEY CHECK (idx >= 0),
    path TEXT NOT NULL UNIQUE,
    user_id {BIGINT} NOT NULL REFERENCES users (id),
    order_id {BIGINT} UNIQUE REFERENCES orders (id),
    bound_at TEXT NOT NULL
);
CREATE INDEX derivation_elements_by_user ON derivation_elements (user_id);
CREATE TABLE device_auth_keys (
    card_serial TEXT PRIMARY KEY REFERENCES cards (serial),
    order_id {BIGINT} NOT NULL UNIQUE REFERENCES orders (id),
    public_key {BLOB} NOT NULL,
    wrapped_private_key {BLOB} NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE sealed_blobs (
    order_id {BIGINT} PRIMARY KEY REFERENCES orders (id),
    card_serial TEXT NOT NULL UNIQUE REFERENCES cards (serial),
    derivation_index {BIGINT} NOT NULL UNIQUE REFERENCES derivation_elements (idx),
    blob {BLOB} NOT NULL,
    user_public_key {BLOB} NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE pin_letters (
    order_id {BIGINT} PRIMARY KEY REFERENCES orders (id),
    mailer_id TEXT,
    letter {BLOB} NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE audit_log (
    id {ID},
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    order_id {BIGINT},
    card_serial TEXT,
    detail TEXT
);
CREATE INDEX audit_log_by_order ON audit_log (order_id)
"""

_APPEND_ONLY_TABLES = ("audit_log", "derivation_elements")


def _sqlite_guards() -> list[str]:
    out: list[str] = []
    for table in _APPEND_ONLY_TABLES:
        for event in ("UPDATE", "DELETE"):
            out.append(
                f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )
    return out


def _postgres_guards() -> list[str]:
    out = [
        "CREATE FUNCTION sealcard_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$"
    ]
    for table in _APPEND_ONLY_TABLES:
        out.append(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION sealcard_refuse_change()"
        )
        out.append(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION sealcard_refuse_change()"
        )
    return out


def statements(dialect: Dialect) -> list[str]:
    """The SQL of schema 1 for `dialect`."""
    text = _TABLES.format(**dialect.types)
    tables = [s.strip() for s in text.split(";") if s.strip()]
    guards = _sqlite_guards() if dialect is Dialect.SQLITE else _postgres_guards()
    return tables + guards
