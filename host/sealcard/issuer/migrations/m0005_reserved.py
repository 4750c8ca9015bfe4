"""Schema 5: reserved, and empty on this branch.

Version 5 belongs to the `sealing` branch's migration (mailers; held orders carry a failure
reason), merged into main in parallel with this branch; the party files took 6. The step is
here only so that the versions stay 1..n without a gap. When both are in one tree, delete this
file: `known_migrations` refuses two modules with version 5.
"""

from __future__ import annotations

from sealcard.issuer.db import Dialect

VERSION = 5
DESCRIPTION = "reserved (the sealing branch's step)"


def statements(dialect: Dialect) -> list[str]:
    """No SQL: the step only keeps the numbers without a gap."""
    del dialect
    return []
