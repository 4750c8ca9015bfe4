"""The issuer's whole stack as a user runs it, for the scripts that drive it end to end
(tools/crash_resume.py, bench/scale_out.py): `sealcard issuer ...` in this interpreter, a
mailer's key, and a PostgreSQL server with a schema of the run's own.

Not a script: tools/crash_resume.py imports it from its own folder, bench/scale_out.py puts
tools/ on sys.path first.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PG_TEST_SERVER = Path(__file__).resolve().parent / "pg_test_server.sh"


def issuer_argv(home: Path, *args: str) -> list[str]:
    """`sealcard issuer ARGS --home HOME` in this interpreter (this tree's code)."""
    return [sys.executable, "-m", "sealcard.cli.main", "issuer", *args, "--home", str(home)]


def run_issuer(
    home: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`sealcard issuer ARGS --home HOME --json`, output captured; the caller judges the exit."""
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [*issuer_argv(home, *args), "--json"],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def stop_issuer_hsm(home: Path) -> None:
    """`sealcard issuer hsm stop` on the way out: whatever it says, the run is ending."""
    subprocess.run(  # noqa: S603 - our own interpreter and module
        issuer_argv(home, "hsm", "stop"),
        capture_output=True,
        check=False,
    )


def write_mailer_key(path: Path) -> None:
    """A fresh RSA-2048 public key (PEM) for `issuer hsm mailer add --key`; its private half
    is thrown away (no letter is ever opened)."""
    path.write_bytes(
        rsa.generate_private_key(65537, 2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def start_postgres(pg_dir: Path) -> str:
    """A throwaway cluster in `pg_dir` (tools/pg_test_server.sh); its URL."""
    return subprocess.run(  # noqa: S603 - our own script
        ["bash", str(PG_TEST_SERVER), "start", str(pg_dir)],  # noqa: S607
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def stop_postgres(pg_dir: Path) -> None:
    subprocess.run(  # noqa: S603 - our own script
        ["bash", str(PG_TEST_SERVER), "stop", str(pg_dir)],  # noqa: S607
        capture_output=True,
        check=False,
    )


def with_schema(url: str, schema: str) -> str:
    """`url` with `schema` as the search path of every connection made from it."""
    option = quote(f"-c search_path={schema}", safe="")
    return f"{url}{'&' if '?' in url else '?'}options={option}"


@contextmanager
def fresh_schema(server: str, prefix: str) -> Iterator[str]:
    """A new schema PREFIX_<random> on `server` for one run, dropped with all in it after the
    run: yields the URL whose connections use it."""
    import psycopg  # the postgres extra: only runs on PostgreSQL need it

    schema = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield with_schema(server, schema)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
