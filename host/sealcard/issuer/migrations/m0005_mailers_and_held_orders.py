"""Schema 5: the mailers the issuer system knows, and why an order could not be sealed.

- ``mailers``: every mailer registered with the issuer HSM (``issuer hsm mailer add``, and
  ``issuer hsm mailer list`` records what the HSM holds), so an order naming a mailer nobody
  registered is refused when it is made, not when it is sealed.
- ``orders.failure_reason``: set on an order that the issuer HSM (or the sealer's checks)
  refused while the rest of its batch was sealed. Such an order stays ``card_assigned`` and
  "on hold": `issuer seal` skips it until an operator retries it (``issuer order retry``) or
  cancels it (``issuer order cancel``: the order ends ``cancelled``, the reason kept).
"""

from __future__ import annotations

from sealcard.issuer.db import Dialect

VERSION = 5
DESCRIPTION = "mailers; held orders carry a failure reason"


def statements(dialect: Dialect) -> list[str]:
    """The SQL of schema 5 (the same on both engines)."""
    del dialect
    return [
        "CREATE TABLE mailers (id TEXT PRIMARY KEY, registered_at TEXT NOT NULL)",
        "ALTER TABLE orders ADD COLUMN failure_reason TEXT",
        "CREATE INDEX orders_held ON orders (state, id) WHERE failure_reason IS NOT NULL",
    ]
