"""A thin database adapter: the same SQL on SQLite (default) and PostgreSQL.

The issuer's code writes SQL once, with `?` placeholders and the portable subset both engines
share (``INSERT .. ON CONFLICT DO NOTHING``, ``RETURNING``). This module hides the rest:

- placeholders (`?` for sqlite3, `%s` for psycopg),
- starting a write transaction (SQLite: ``BEGIN IMMEDIATE`` takes the one writer lock at once,
  so two sealers never deadlock; PostgreSQL: row locks with ``FOR UPDATE SKIP LOCKED``, see
  `Tx.for_update`),
- driver exceptions, turned into `DatabaseError` subclasses,
- column types in migrations (`Dialect.types`).

URLs: ``sqlite:///relative/or/absolute/path.db`` (or a bare file path), ``sqlite:///:memory:``,
``postgresql://user@host/db`` or ``postgresql:///db?host=/socket/dir``.
"""

from __future__ import annotations

import enum
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sealcard.issuer.errors import (
    AppendOnlyViolationError,
    DatabaseError,
    DatabaseUnavailableError,
    DuplicateRecordError,
    IssuerError,
)

#: A row as the drivers return it.
Row = tuple[Any, ...]
#: Parameters of one statement.
Params = Sequence[Any]

_APPEND_ONLY_MARK = "append-only"
#: INSERT .. VALUES (?, .., ?) and nothing after it (no RETURNING, no ON CONFLICT)
_SINGLE_ROW_INSERT = re.compile(r"^(INSERT INTO [^;]+? VALUES )(\((?:\?, )*\?\))$", re.S)
#: Rows per multi-row INSERT: far below SQLite's 32,766 and PostgreSQL's 65,535 parameters
_ROWS_PER_INSERT = 200
_SQLITE_BUSY_TIMEOUT_MS = 60_000


class Dialect(enum.Enum):
    """Which engine a `Database` talks to."""

    SQLITE = "sqlite"
    POSTGRES = "postgresql"

    @property
    def types(self) -> dict[str, str]:
        """Migration column types: ``{ID}``, ``{BIGINT}``, ``{BLOB}``, ``{TEXT}``, ``{INT}``."""
        if self is Dialect.SQLITE:
            return {
                "ID": "INTEGER PRIMARY KEY AUTOINCREMENT",
                "BIGINT": "INTEGER",
                "BLOB": "BLOB",
                "TEXT": "TEXT",
                "INT": "INTEGER",
            }
        return {
            "ID": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
            "BIGINT": "BIGINT",
            "BLOB": "BYTEA",
            "TEXT": "TEXT",
            "INT": "INTEGER",
        }


class _Cursor(Protocol):
    rowcount: int

    def execute(self, sql: Any, params: Any = ..., /) -> Any: ...

    def executemany(self, sql: Any, params: Any, /) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> Any: ...


def _translate_error(exc: Exception) -> IssuerError:
    text = str(exc)
    if _APPEND_ONLY_MARK in text:
        return AppendOnlyViolationError(text.strip().splitlines()[0])
    name = type(exc).__name__
    if name in {
        "IntegrityError",
        "UniqueViolation",
        "ForeignKeyViolation",
        "NotNullViolation",
        "CheckViolation",
    }:
        return DuplicateRecordError(text.strip().splitlines()[0])
    return DatabaseError(f"{name}: {text.strip().splitlines()[0] if text.strip() else name}")


class Tx:
    """One open transaction. Every method raises `DatabaseError` (or a subclass) on failure."""

    def __init__(self, cursor: _Cursor, dialect: Dialect) -> None:
        self._cur = cursor
        self.dialect = dialect
        self.rowcount = 0

    @property
    def for_update(self) -> str:
        """Suffix for a SELECT that claims rows: PostgreSQL locks them, skipping rows another
        transaction holds; SQLite needs nothing (``BEGIN IMMEDIATE`` already excludes writers)."""
        return " FOR UPDATE SKIP LOCKED" if self.dialect is Dialect.POSTGRES else ""

    @property
    def for_update_wait(self) -> str:
        """Suffix for a SELECT of rows named by id that this transaction must have: PostgreSQL
        waits for a transaction that holds them (a sealer's chunk until its commit point B);
        skipped, an existing order would look like no order at all."""
        return " FOR UPDATE" if self.dialect is Dialect.POSTGRES else ""

    def _sql(self, sql: str) -> str:
        if self.dialect is Dialect.POSTGRES:
            return _pg_sql(sql)
        return sql

    def execute(self, sql: str, params: Params | None = None) -> Tx:
        """Run one statement (`?` placeholders)."""
        try:
            if params is None:  # no placeholders: run the text as it is (DDL, constant queries)
                self._cur.execute(sql)
            else:
                self._cur.execute(self._sql(sql), tuple(params))
        except Exception as exc:  # driver errors differ by engine: translate them all
            raise _translate_error(exc) from exc
        self.rowcount = self._cur.rowcount
        return self

    def executemany(self, sql: str, rows: Sequence[Params]) -> int:
        """Run one statement for many parameter rows; returns the total of affected rows.

        A plain ``INSERT .. VALUES (?, ..)`` becomes one statement per up to
        `_ROWS_PER_INSERT` rows (``VALUES (..), (..), ..``): the engine then plans and runs
        one statement instead of one per row (measured: most of PostgreSQL's cost per card)."""
        if not rows:
            return 0
        single = _SINGLE_ROW_INSERT.match(sql)
        if single is not None and len(rows) > 1:
            return self._insert_rows(single.group(1), single.group(2), rows)
        try:
            self._cur.executemany(self._sql(sql), [tuple(r) for r in rows])
        except Exception as exc:
            raise _translate_error(exc) from exc
        self.rowcount = self._cur.rowcount
        return self.rowcount

    def _insert_rows(self, head: str, group: str, rows: Sequence[Params]) -> int:
        total = 0
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            part = rows[start : start + _ROWS_PER_INSERT]
            self.execute(head + ", ".join([group] * len(part)), [v for row in part for v in row])
            total += self.rowcount
        self.rowcount = total
        return total

    def one(self, sql: str, params: Params | None = None) -> Row | None:
        """The first row of a query, or None."""
        self.execute(sql, params)
        row = self._cur.fetchone()
        return None if row is None else tuple(row)

    def all(self, sql: str, params: Params | None = None) -> list[Row]:
        """Every row of a query."""
        self.execute(sql, params)
        return [tuple(r) for r in self._cur.fetchall()]

    def scalar(self, sql: str, params: Params | None = None) -> Any:
        """The first column of the first row (None when there is no row)."""
        row = self.one(sql, params)
        return None if row is None else row[0]


_pg_cache: dict[str, str] = {}


def _pg_sql(sql: str) -> str:
    cached = _pg_cache.get(sql)
    if cached is None:
        cached = sql.replace("%", "%%").replace("?", "%s")
        _pg_cache[sql] = cached
    return cached


@dataclass(frozen=True)
class DatabaseUrl:
    """A parsed database URL."""

    dialect: Dialect
    target: str  # SQLite: a file path or ":memory:"; PostgreSQL: the URL itself

    @classmethod
    def parse(cls, url: str) -> DatabaseUrl:
        """Accept ``sqlite:///path``, a bare path, or ``postgresql://...`` / ``postgres://...``."""
        if url.startswith(("postgresql://", "postgres://")):
            return cls(Dialect.POSTGRES, url)
        if url.startswith("sqlite:///"):
            return cls(Dialect.SQLITE, url[len("sqlite:///") :])
        if url.startswith("sqlite:"):
            raise DatabaseError("a SQLite URL is sqlite:///PATH (three slashes)")
        if "://" in url:
            raise DatabaseError(f"unsupported database URL scheme in {redact_url(url)!r}")
        return cls(Dialect.SQLITE, url)


def redact_url(url: str) -> str:
    """The URL with any password replaced, for messages and status output."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.split("@", 1)
    if ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    return f"{scheme}://{creds}@{host}"


class Database:
    """A connection to the issuer's records. Not shared between threads; open one per process."""

    def __init__(self, url: str) -> None:
        parsed = DatabaseUrl.parse(url)
        self.url = url
        self.dialect = parsed.dialect
        self._conn: Any
        if parsed.dialect is Dialect.SQLITE:
            self._conn = self._open_sqlite(parsed.target)
        else:
            self._conn = self._open_postgres(parsed.target)

    @staticmethod
    def _open_sqlite(target: str) -> sqlite3.Connection:
        if target != ":memory:":
            parent = Path(target).expanduser().parent
            if not parent.is_dir():
                raise DatabaseError(f"the folder for the SQLite database does not exist: {parent}")
        try:
            conn = sqlite3.connect(
                target,
                isolation_level=None,
                timeout=_SQLITE_BUSY_TIMEOUT_MS / 1000,
                check_same_thread=False,
            )
            # WAL: readers never block the writer. synchronous=FULL: a commit is on disk before
            # COMMIT returns, so a commit point survives even a power cut, not only a SIGKILL.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA cache_size=-65536")
            conn.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot open SQLite database {target}: {exc}") from exc
        return conn

    @staticmethod
    def _open_postgres(url: str) -> Any:
        try:
            import psycopg
        except ImportError as exc:  # optional extra
            raise DatabaseError(
                "PostgreSQL needs psycopg 3: pip install 'sealcard[postgres]'"
            ) from exc
        try:
            return psycopg.connect(url, autocommit=True)
        except psycopg.Error as exc:
            raise DatabaseUnavailableError(f"cannot connect to {redact_url(url)}: {exc}") from exc

    def set_cache_size(self, mib: int) -> None:
        """SQLite's page cache for this connection (a job that streams through many rows once
        gains nothing from a large one, and its memory would grow up to that size)."""
        if self.dialect is Dialect.SQLITE:
            self._conn.execute(f"PRAGMA cache_size=-{int(mib) * 1024}")

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """One transaction: committed when the block ends, rolled back if it raises.

        On SQLite the transaction starts with ``BEGIN IMMEDIATE`` (the writer lock is taken
        at once, so read-then-write sequences inside it are serialized across processes).
        """
        if self.dialect is Dialect.SQLITE:
            cur = self._conn.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _translate_error(exc) from exc
            try:
                yield Tx(cur, self.dialect)
            except BaseException:
                self._conn.rollback()
                raise
            try:
                cur.execute("COMMIT")
            except sqlite3.Error as exc:
                self._conn.rollback()
                raise _translate_error(exc) from exc
            return
        import psycopg

        try:
            with self._conn.transaction(), self._conn.cursor() as cur:
                yield Tx(cur, self.dialect)
        except psycopg.Error as exc:
            raise _translate_error(exc) from exc

    @contextmanager
    def read_transaction(self) -> Iterator[Tx]:
        """A transaction that only reads and waits for no writer (SQLite: a deferred BEGIN
        reads the last commit under WAL; PostgreSQL: READ ONLY). Never commits anything."""
        if self.dialect is Dialect.SQLITE:
            cur = self._conn.cursor()
            try:
                cur.execute("BEGIN DEFERRED")
            except sqlite3.Error as exc:
                raise _translate_error(exc) from exc
            try:
                yield Tx(cur, self.dialect)
            finally:
                self._conn.rollback()
            return
        import psycopg

        try:
            with self._conn.transaction(), self._conn.cursor() as cur:
                cur.execute("SET TRANSACTION READ ONLY")
                yield Tx(cur, self.dialect)
        except psycopg.Error as exc:
            raise _translate_error(exc) from exc

    def server_version(self) -> str:
        """The engine and its version, e.g. "SQLite 3.40.1" or "PostgreSQL 15.18"."""
        if self.dialect is Dialect.SQLITE:
            return f"SQLite {sqlite3.sqlite_version}"
        with self.read_transaction() as tx:
            return f"PostgreSQL {tx.scalar('SHOW server_version')}"

    def sqlite_pragma(self, name: str, value: str) -> None:
        """Set a SQLite pragma outside any transaction (migrations: foreign_keys off and on)."""
        if self.dialect is not Dialect.SQLITE:
            return
        if not name.isidentifier() or not value.isalnum():
            raise DatabaseError(f"bad pragma {name}={value}")
        try:
            self._conn.execute(f"PRAGMA {name}={value}")
        except sqlite3.Error as exc:
            raise _translate_error(exc) from exc

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
