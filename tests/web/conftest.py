"""Fixtures for the HTTPS API and console tests: the app in this process over a fresh SQLite
issuer home, with the software stand-ins for both HSM roles (tests/support), a clock the
test can move, one operator, one auditor and two customers.

    api        an ApiWorld: .client (fastapi TestClient), .services, .clock, .operator,
               .auditor (login, password), .customers [(login, password, user_id)],
               .login(login, password) -> bearer headers
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from apiworld import AUDITOR, OPERATOR, ApiWorld, Clock
from fastapi.testclient import TestClient
from software_hsm import SoftwareDeviceAuthKeys, SoftwareIssuerHsm

from sealcard.issuer.accounts import Role
from sealcard.issuer.db import Database
from sealcard.issuer.migrations import apply_migrations
from sealcard.issuer.records import Records
from sealcard.parties.issuer.access import add_staff
from sealcard.parties.issuer.context import IssuerContext, Policy
from sealcard.parties.issuer.intake import import_customers_csv
from sealcard.parties.provider import ProviderCA
from sealcard.web.app import create_app
from sealcard.web.services import AppServices

PG_ENV = "SEALCARD_TEST_PG_URL"


@pytest.fixture(scope="session")
def provider_ca(tmp_path_factory: pytest.TempPathFactory) -> ProviderCA:
    return ProviderCA.create(tmp_path_factory.mktemp("ca") / "ca", b"web test passphrase")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same API test on a SQLite file and on PostgreSQL ($SEALCARD_TEST_PG_URL, a fresh
    schema each time, dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'issuer.db'}"
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"no PostgreSQL: set {PG_ENV} (tools/pg_test_server.sh start DIR prints one)")
    import psycopg

    schema = f"w_{secrets.token_hex(6)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    option = quote(f"-c search_path={schema}", safe="")
    try:
        yield f"{base}{'&' if '?' in base else '?'}options={option}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def api(db_url: str, provider_ca: ProviderCA) -> Iterator[ApiWorld]:
    url = db_url
    db = Database(url)
    apply_migrations(db)
    records = Records(db, "setup")
    records.initialize()
    records.record_mailers(["post"])  # as `issuer hsm mailer add` records it
    ctx = IssuerContext(records)
    add_staff(ctx, OPERATOR[0], Role.OPERATOR, OPERATOR[1])
    add_staff(ctx, AUDITOR[0], Role.AUDITOR, AUDITOR[1])
    intake = import_customers_csv(
        ctx, "customer_ref,name,address\nC1,Ada Lovelace,1 Main St\nC2,Bob Byron,2 Main St\n"
    )
    customers = [(c.login, c.password, c.user_id) for c in intake.credentials]
    db.close()
    clock = Clock()
    hsm = SoftwareIssuerHsm(bytes(range(32)))
    keys = SoftwareDeviceAuthKeys()
    services = AppServices(
        open_records=lambda actor: Records.open(url, actor),
        auth_keys=keys,
        hsm=hsm,
        issuer_public_key=hsm.issuer_public_key(),
        provider_roots=[provider_ca.certificate],
        policy=Policy(account_failures=3, address_failures=10),
        clock=clock,
        workers=2,
    )
    with TestClient(create_app(services), base_url="https://testserver") as client:
        yield ApiWorld(client, services, clock, url, customers, hsm, keys, provider_ca)
