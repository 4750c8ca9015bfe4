"""Rows written the way schema 1 stored them, for the tests that migrate an old database.

Today's `Records` writes columns and tables that later migrations add (the audit chain, for
one), so an old database is filled by plain SQL in schema 1's own columns instead.
"""

from __future__ import annotations

from typing import Any

from sealcard.issuer.db import Database


def write_schema_1_stock(db: Database, derivation_base: str, pack: Any) -> None:
    """The derivation base, one pack of cards and its audit entry, in schema 1's columns."""
    with db.transaction() as tx:
        tx.execute(
            "INSERT INTO settings (name, value) VALUES ('derivation_base', ?)", (derivation_base,)
        )
        seq = tx.scalar(
            "INSERT INTO packs (pack_serial, imported_at, card_count, source)"
            " VALUES (?, 'then', ?, 'fake') RETURNING seq",
            (pack.pack_serial, len(pack.cards)),
        )
        for pos, c in enumerate(pack.cards):
            tx.execute(
                "INSERT INTO cards (serial, pack_seq, position, device_public_key,"
                " issuer_auth_public_key, device_key_cert, issuer_auth_cert, signed_device_key,"
                " verified, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'available')",
                (
                    c.serial.hex(),
                    seq,
                    pos,
                    c.device_public_key_der,
                    c.issuer_auth_public_key_der,
                    c.device_key_cert,
                    c.issuer_auth_cert,
                    c.signed_device_key,
                    int(c.verified),
                ),
            )
        tx.execute(
            "INSERT INTO audit_log (at, actor, action, detail)"
            " VALUES ('then', 'tester', 'pack.import', '{}')"
        )
