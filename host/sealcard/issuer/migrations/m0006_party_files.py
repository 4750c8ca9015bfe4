"""Schema 6: the parties the issuer exchanges sealed files with, the files it took in (replay
refusal), the batches it exported (to a bureau; or, without one, the PIN letters of activation
orders for their mailers), and confirmations that arrive out of order."""

from __future__ import annotations

from sealcard.issuer.db import Dialect

VERSION = 6
DESCRIPTION = "party files: parties, received files, export batches, order events"

_TABLES = """
CREATE TABLE parties (
    role TEXT NOT NULL CHECK (role IN ('provider', 'issuer', 'bureau', 'mailer', 'shipper')),
    name TEXT NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE,
    bundle TEXT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (role, name)
);
CREATE TABLE received_files (
    file_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    batch TEXT NOT NULL,
    sender TEXT NOT NULL,
    rows_count {INT} NOT NULL,
    received_at TEXT NOT NULL
);
CREATE TABLE export_batches (
    batch_id TEXT PRIMARY KEY,
    bureau TEXT,
    state TEXT NOT NULL CHECK (state IN ('writing', 'written')),
    orders_count {INT} NOT NULL,
    created_at TEXT NOT NULL,
    written_at TEXT
);
CREATE TABLE batch_orders (
    order_id {BIGINT} PRIMARY KEY REFERENCES orders (id),
    batch_id TEXT NOT NULL REFERENCES export_batches (batch_id),
    position {INT} NOT NULL,
    UNIQUE (batch_id, position)
);
CREATE TABLE order_events (
    order_id {BIGINT} NOT NULL REFERENCES orders (id),
    kind TEXT NOT NULL CHECK (kind IN ('handed_to_shipper', 'pin_mailed')),
    file_id TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (order_id, kind)
)
"""


def statements(dialect: Dialect) -> list[str]:
    """The SQL of schema 6 for `dialect`."""
    text = _TABLES.format(**dialect.types)
    return [s.strip() for s in text.split(";") if s.strip()]
