"""The SQLite record tests of tests/unit/test_issuer_records.py, run again on PostgreSQL."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealcard.issuer.db import Database
from sealcard.issuer.migrations import apply_migrations
from sealcard.issuer.records import Records

pytestmark = pytest.mark.issuer

_SPEC = importlib.util.spec_from_file_location(
    "issuer_record_cases", Path(__file__).parents[1] / "unit" / "test_issuer_records.py"
)
assert _SPEC is not None and _SPEC.loader is not None
_cases = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_cases)

# every test function of the SQLite module, collected here with the fixtures below
globals().update({name: getattr(_cases, name) for name in dir(_cases) if name.startswith("test_")})


@pytest.fixture
def db_url(pg_url: str) -> str:
    return pg_url


@pytest.fixture
def records(pg_url: str) -> Iterator[Records]:
    db = Database(pg_url)
    apply_migrations(db)
    r = Records(db, "tester")
    r.initialize(_cases.BASE)
    r.record_mailers(_cases.MAILERS)
    yield r
    r.close()
