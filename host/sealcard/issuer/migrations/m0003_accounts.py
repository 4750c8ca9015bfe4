"""Schema 3: accounts of the issuer's HTTPS API and console, their sessions, sign-in failures
(rate limits) and single-use challenges (activation and issuer commands through the user's
computer). No secret is stored: passwords as Argon2id hashes, session tokens and challenges
as SHA-256 hashes or public random values."""

from __future__ import annotations

from sealcard.issuer.db import Dialect

VERSION = 3
DESCRIPTION = "API accounts, sessions, sign-in failures, challenges"

_TABLES = """
CREATE TABLE accounts (
    id {ID},
    login TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('customer', 'operator', 'auditor')),
    user_id {BIGINT} UNIQUE REFERENCES users (id),
    password_hash TEXT NOT NULL,
    disabled {INT} NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at TEXT NOT NULL,
    password_changed_at TEXT NOT NULL,
    CHECK ((role = 'customer') = (user_id IS NOT NULL))
);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    account_id {BIGINT} NOT NULL REFERENCES accounts (id),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    ended_at TEXT
);
CREATE INDEX sessions_by_account ON sessions (account_id);
CREATE TABLE signin_failures (
    id {ID},
    scope TEXT NOT NULL CHECK (scope IN ('account', 'address')),
    subject TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX signin_failures_by_subject ON signin_failures (scope, subject, at);
CREATE TABLE challenges (
    id TEXT PRIMARY KEY,
    account_id {BIGINT} NOT NULL REFERENCES accounts (id),
    purpose TEXT NOT NULL,
    challenge {BLOB} NOT NULL,
    card_serial TEXT,
    detail TEXT,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
)
"""


def statements(dialect: Dialect) -> list[str]:
    """The SQL of schema 3 for `dialect`."""
    text = _TABLES.format(**dialect.types)
    return [s.strip() for s in text.split(";") if s.strip()]
