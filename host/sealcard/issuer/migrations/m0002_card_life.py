"""Schema 2: a derivation element belongs to its customer, a card to its order; an order's
card may be lost, terminated or the order cancelled; orders for activation on the user's
computer; replacement orders.

- ``orders.derivation_index`` and ``sealed_blobs.derivation_index`` are no longer unique: a
  replacement order reuses the element of the order it replaces (same user key, same
  addresses). A trigger on both engines refuses an order whose element belongs to another
  user, so an element is never used for another customer; ``derivation_elements`` stays
  append-only. ``orders.card_serial`` stays unique: a card belongs to one order for good.
- order states ``lost``, ``terminated``, ``cancelled`` (``sealcard.issuer.lifecycle``).
- ``orders.channel``: ``bureau`` (sealed in batches for the bureau) or ``activation`` (sealed
  for the card the customer presents on their own computer, issue 9).
- ``orders.replaces_order_id``: the order whose lost or terminated card this one replaces.
- ``users.customer_ref``: the bank's own customer number (unique when given), for bulk intake.

SQLite cannot drop a UNIQUE constraint in place: the two tables are rebuilt from their own
current definition (so columns other migrations added are kept) with foreign keys off.
"""

from __future__ import annotations

import re

from sealcard.issuer.db import Dialect, Tx
from sealcard.issuer.errors import MigrationError

VERSION = 2
DESCRIPTION = "derivation elements per customer, cards per order, lost/terminated/cancelled"
SQLITE_FOREIGN_KEYS_OFF = True

STATES = (
    "requested",
    "card_assigned",
    "sealed",
    "sent_to_bureau",
    "personalized",
    "failed",
    "shipped",
    "pin_mailed",
    "lost",
    "terminated",
    "cancelled",
)
_STATE_CHECK = "CHECK (state IN (" + ", ".join(f"'{s}'" for s in STATES) + "))"
_CHANNEL_CHECK = "CHECK (channel IN ('bureau', 'activation'))"
_ADD_CHANNEL = (
    f"ALTER TABLE orders ADD COLUMN channel TEXT NOT NULL DEFAULT 'bureau' {_CHANNEL_CHECK}"
)
_OWNER_MESSAGE = "an order may only use a derivation element of its own user"

_COMMON = [
    "ALTER TABLE users ADD COLUMN customer_ref TEXT",
    "CREATE UNIQUE INDEX users_by_customer_ref ON users (customer_ref)",
    "CREATE UNIQUE INDEX derivation_elements_of_user ON derivation_elements (idx, user_id)",
    "CREATE INDEX orders_by_derivation_index ON orders (derivation_index)",
    "CREATE INDEX orders_by_user ON orders (user_id)",
]


def _sqlite_rebuild(tx: Tx, table: str, edits: list[tuple[str, str]]) -> None:
    """Rebuild `table` from its stored CREATE statement with `edits` (regex, replacement),
    keeping every column, row and index."""
    sql = tx.scalar("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
    if sql is None:
        raise MigrationError(f"table {table} is missing")
    new_sql = str(sql)
    for pattern, replacement in edits:
        new_sql, count = re.subn(pattern, replacement, new_sql, count=1, flags=re.S)
        if count != 1:
            raise MigrationError(f"table {table}: cannot find {pattern!r} in its definition")
    indexes = [
        str(r[0])
        for r in tx.all(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?"
            " AND sql IS NOT NULL",
            (table,),
        )
    ]
    temporary = f"{table}_rebuilt"
    tx.execute(new_sql.replace(f"CREATE TABLE {table} (", f"CREATE TABLE {temporary} (", 1))
    tx.execute(f"INSERT INTO {temporary} SELECT * FROM {table}")  # noqa: S608 (fixed names)
    tx.execute(f"DROP TABLE {table}")
    tx.execute(f"ALTER TABLE {temporary} RENAME TO {table}")
    for index in indexes:
        tx.execute(index)


def _owner_trigger_sqlite(event: str) -> str:
    return (
        f"CREATE TRIGGER orders_element_owner_{event.lower()} BEFORE {event}"  # noqa: S608
        f"{' OF derivation_index, user_id' if event == 'UPDATE' else ''} ON orders"
        " WHEN NEW.derivation_index IS NOT NULL AND NOT EXISTS (SELECT 1 FROM"
        " derivation_elements d WHERE d.idx = NEW.derivation_index AND d.user_id = NEW.user_id)"
        f" BEGIN SELECT RAISE(ABORT, '{_OWNER_MESSAGE}'); END"
    )


def run(tx: Tx) -> None:
    """Apply schema 2 on either engine."""
    if tx.dialect is Dialect.SQLITE:
        _sqlite_rebuild(
            tx,
            "orders",
            [
                (r"CHECK \(state IN \([^)]*\)\)", _STATE_CHECK),
                (r"derivation_index INTEGER UNIQUE", "derivation_index INTEGER"),
            ],
        )
        _sqlite_rebuild(
            tx,
            "sealed_blobs",
            [(r"derivation_index INTEGER NOT NULL UNIQUE", "derivation_index INTEGER NOT NULL")],
        )
        statements = [
            _ADD_CHANNEL,
            "ALTER TABLE orders ADD COLUMN replaces_order_id INTEGER REFERENCES orders (id)",
            *_COMMON,
            _owner_trigger_sqlite("INSERT"),
            _owner_trigger_sqlite("UPDATE"),
        ]
    else:
        statements = [
            "ALTER TABLE orders DROP CONSTRAINT orders_state_check",
            f"ALTER TABLE orders ADD CONSTRAINT orders_state_check {_STATE_CHECK}",
            "ALTER TABLE orders DROP CONSTRAINT orders_derivation_index_key",
            "ALTER TABLE sealed_blobs DROP CONSTRAINT sealed_blobs_derivation_index_key",
            _ADD_CHANNEL,
            "ALTER TABLE orders ADD COLUMN replaces_order_id BIGINT REFERENCES orders (id)",
            *_COMMON,
            "CREATE FUNCTION sealcard_element_owner() RETURNS trigger LANGUAGE plpgsql AS $$ "  # noqa: S608
            "BEGIN IF NEW.derivation_index IS NOT NULL AND NOT EXISTS (SELECT 1 FROM"
            " derivation_elements d WHERE d.idx = NEW.derivation_index AND"
            f" d.user_id = NEW.user_id) THEN RAISE EXCEPTION '{_OWNER_MESSAGE}'; END IF;"
            " RETURN NEW; END $$",
            "CREATE TRIGGER orders_element_owner BEFORE INSERT OR UPDATE OF derivation_index,"
            " user_id ON orders FOR EACH ROW EXECUTE FUNCTION sealcard_element_owner()",
        ]
    for statement in statements:
        tx.execute(statement)


def statements(dialect: Dialect) -> list[str]:
    """Not used: this step reads the schema first (`run`)."""
    return []
