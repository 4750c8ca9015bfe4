"""Numbered schema migrations, applied in order by `apply_migrations` (``sealcard issuer init``).

Each migration is a module ``mNNNN_<what>.py`` with ``VERSION``, ``DESCRIPTION`` and
``statements(dialect) -> list[str]``; a step that must read the schema first (SQLite rebuilds a
table to drop a constraint) may instead define ``run(tx)``, and a step may add ``migrate_rows(tx)``
for data that SQL alone cannot compute (it runs after the statements, in the same transaction).
A migration runs in one transaction with the row that records it in ``schema_version``, so it is
applied entirely or not at all. A module with ``SQLITE_FOREIGN_KEYS_OFF = True`` runs on SQLite
with foreign keys off (the documented way to rebuild a table others refer to) and
``PRAGMA foreign_key_check`` must find nothing before it commits. Never edit an applied
migration: add the next number.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType

from sealcard.issuer.db import Database, Dialect, Tx
from sealcard.issuer.errors import MigrationError


@dataclass(frozen=True)
class Migration:
    """One schema step."""

    version: int
    description: str
    module: ModuleType

    @property
    def foreign_keys_off(self) -> bool:
        """Whether SQLite must run this step with foreign keys off (table rebuilds)."""
        return bool(getattr(self.module, "SQLITE_FOREIGN_KEYS_OFF", False))

    def apply(self, tx: Tx, dialect: Dialect) -> None:
        """Run this step inside `tx`: `run(tx)` or its statements, then its row migration."""
        run = getattr(self.module, "run", None)
        if run is not None:
            run(tx)
        else:
            for statement in self.statements(dialect):
                tx.execute(statement)
        migrate_rows = getattr(self.module, "migrate_rows", None)
        if migrate_rows is not None:
            migrate_rows(tx)

    def statements(self, dialect: Dialect) -> list[str]:
        """The SQL of this step for one engine."""
        result = self.module.statements(dialect)
        if not isinstance(result, list):
            raise MigrationError(f"migration {self.version} returned no statement list")
        return [str(s) for s in result]


def known_migrations() -> list[Migration]:
    """Every migration shipped with this code, in version order."""
    found: list[Migration] = []
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("m"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.append(Migration(int(module.VERSION), str(module.DESCRIPTION), module))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration numbers must be 1..n without gaps, found {versions}")
    return found


_CREATE_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
)


def _current(tx: Tx) -> int:
    value = tx.scalar("SELECT MAX(version) FROM schema_version")
    return int(value) if value is not None else 0


def current_version(db: Database) -> int:
    """The schema version of the database (0 when nothing was applied)."""
    with db.transaction() as tx:
        tx.execute(_CREATE_VERSION_TABLE)
        return _current(tx)


def applied_version(db: Database) -> int:
    """The schema version of the database, read without writing or waiting for a writer
    (0 when no migration was applied): for checks such as `sealcard doctor`."""
    if db.dialect is Dialect.POSTGRES:
        exists_sql = "SELECT to_regclass('schema_version') IS NOT NULL"
    else:
        exists_sql = (
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        )
    with db.read_transaction() as tx:
        if not tx.scalar(exists_sql):
            return 0
        return _current(tx)


def latest_version() -> int:
    """The version this code expects."""
    return known_migrations()[-1].version


def apply_migrations(db: Database, target: int | None = None) -> list[int]:
    """Apply every pending migration (up to `target`); returns the versions applied now.

    Safe to call again and from two processes at once (the version table is locked while a
    step runs). Refuses a database newer than this code.
    """
    migrations = known_migrations()
    newest = migrations[-1].version
    target = newest if target is None else target
    if not 0 <= target <= newest:
        raise MigrationError(f"no migration {target}: this code knows 1..{newest}")
    with db.transaction() as tx:
        tx.execute(_CREATE_VERSION_TABLE)
        have = _current(tx)
    if have > newest:
        raise MigrationError(
            f"the database has schema version {have}, newer than this code ({newest}):"
            " upgrade sealcard"
        )
    applied: list[int] = []
    for migration in migrations:
        if migration.version > target:
            break
        fk_off = migration.foreign_keys_off and db.dialect is Dialect.SQLITE
        if fk_off:
            db.sqlite_pragma("foreign_keys", "OFF")  # a no-op inside a transaction: set it here
        try:
            with db.transaction() as tx:
                if db.dialect is Dialect.POSTGRES:
                    tx.execute("LOCK TABLE schema_version IN EXCLUSIVE MODE")
                if _current(tx) >= migration.version:
                    continue  # another process applied it meanwhile
                migration.apply(tx, db.dialect)
                if fk_off:
                    broken = tx.all("PRAGMA foreign_key_check")
                    if broken:
                        raise MigrationError(
                            f"migration {migration.version} would break {len(broken)} foreign"
                            f" key(s), first in table {broken[0][0]}: nothing was changed"
                        )
                tx.execute(
                    "INSERT INTO schema_version (version, description, applied_at)"
                    " VALUES (?, ?, ?)",
                    (migration.version, migration.description, datetime.now(UTC).isoformat()),
                )
        finally:
            if fk_off:
                db.sqlite_pragma("foreign_keys", "ON")
        applied.append(migration.version)
    return applied


def require_current(db: Database) -> None:
    """Raise `MigrationError` unless the database is at this code's schema version."""
    have = current_version(db)
    want = latest_version()
    if have != want:
        hint = "run `sealcard issuer init`" if have < want else "upgrade sealcard"
        raise MigrationError(f"database schema version is {have}, this code needs {want}: {hint}")
