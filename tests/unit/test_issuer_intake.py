"""Bulk intake: customers.csv and orders.csv parsed whole or refused line by line; customers
with generated credentials (Argon2id), the credentials file; the CLI as a subprocess."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealcard.crypto.passwords import verify_password
from sealcard.formats.intake_csv import IntakeFileError, parse_customers, parse_orders
from sealcard.issuer.db import Database
from sealcard.issuer.migrations import apply_migrations
from sealcard.issuer.records import Records
from sealcard.parties.issuer.context import ConflictError, IssuerContext, NotFoundError
from sealcard.parties.issuer.intake import (
    check_credentials_path,
    import_customers_csv,
    import_orders_csv,
    write_credentials,
)

CUSTOMERS = (
    'customer_ref,name,address\nC1,Ada Lovelace,12 St James\'s Sq\nC2,Bob,"2 Main St, Town"\n'
)


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[IssuerContext]:
    db = Database(f"sqlite:///{tmp_path / 'issuer.db'}")
    apply_migrations(db)
    records = Records(db, "tester")
    records.initialize()
    yield IssuerContext(records)
    db.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "empty"),
        ("name,address\nAda,x\n", "the header is"),
        ("customer_ref,name,address,shoe_size\n", "the header is"),
        ("customer_ref,name,address\n", "no customer"),
        ("customer_ref,name,address\nC1,Ada\n", "line 2: expected 3 fields"),
        (
            "customer_ref,name,address\nC1,Ada,x\nC1,Bob,y\n",
            "line 3: customer C1 is also on line 2",
        ),
        ("customer_ref,name,address\nC 1,Ada,x\n", "line 2: customer_ref must be"),
        ("customer_ref,name,address\nC1,,x\n", "line 2: customer C1: name is empty"),
        ("customer_ref,name,address,login\nC1,A,x,l\nC2,B,y,l\n", "login l is also on line 2"),
    ],
)
def test_bad_customer_files_are_refused_by_line(text: str, expected: str) -> None:
    with pytest.raises(IntakeFileError, match=expected) as info:
        parse_customers(text)
    assert "nothing was added" in str(info.value)


def test_orders_file_lines_are_checked() -> None:
    good = parse_orders(
        "customer_ref,channel,pin_source,mailer,count\nC1,bureau,hsm,post,2\nC2,activation,none,,\n"
    )
    assert [(o.customer_ref, o.channel, o.count, o.mailer) for o in good] == [
        ("C1", "bureau", 2, "post"),
        ("C2", "activation", 1, None),
    ]
    with pytest.raises(IntakeFileError) as info:
        parse_orders(
            "customer_ref,channel,pin_source\nC1,post,hsm\nC2,bureau,hsm\nC3,bureau,none\n"
        )
    assert len(info.value.problems) == 3
    assert "line 2: channel 'post'" in str(info.value)
    assert "line 3: pin_source hsm needs a mailer" in str(info.value)


def test_customers_get_accounts_with_working_credentials(ctx: IssuerContext) -> None:
    intake = import_customers_csv(ctx, CUSTOMERS, threads=2)
    assert intake.users == 2
    ada = intake.credentials[0]
    assert ada.login == "C1" and "***" in repr(ada) and ada.password not in repr(ada)
    found = ctx.accounts.by_login("C1")
    assert found is not None
    account, stored = found
    assert account.role == "customer" and account.user_id == ada.user_id
    assert stored.startswith("$argon2id$") and ada.password not in stored
    assert verify_password(stored, ada.password)
    assert not verify_password(stored, intake.credentials[1].password)
    assert ctx.records.get_user(ada.user_id).customer_ref == "C1"
    with pytest.raises(ConflictError, match="exist already"):
        import_customers_csv(ctx, CUSTOMERS)
    assert ctx.records.status().users == 2


def test_orders_by_customer_number(ctx: IssuerContext) -> None:
    import_customers_csv(ctx, CUSTOMERS)
    with pytest.raises(NotFoundError, match="line 3: 'C9'"):
        import_orders_csv(ctx, "customer_ref,channel,pin_source\nC1,bureau,none\nC9,bureau,none\n")
    assert ctx.records.list_orders() == []
    ids = import_orders_csv(
        ctx, "customer_ref,channel,pin_source,count\nC1,bureau,none,2\nC2,activation,none,1\n"
    ).orders
    assert len(ids) == 3
    assert [o.channel for o in ctx.records.list_orders()] == ["bureau", "bureau", "activation"]


def test_credentials_file_is_new_and_private(ctx: IssuerContext, tmp_path: Path) -> None:
    intake = import_customers_csv(ctx, CUSTOMERS)
    out = tmp_path / "creds.csv"
    check_credentials_path(out)
    write_credentials(out, intake.credentials)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    lines = out.read_text().splitlines()
    assert lines[0] == "customer_ref,login,password"
    assert lines[1] == f"C1,C1,{intake.credentials[0].password}"
    with pytest.raises(Exception, match="exists"):
        check_credentials_path(out)
    with pytest.raises(FileExistsError):
        write_credentials(out, intake.credentials)


def _sealcard(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "host")}
    return subprocess.run(
        [sys.executable, "-m", "sealcard.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def test_user_import_and_order_file_through_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert _sealcard("issuer", "init", "--home", str(home)).returncode == 0
    customers = tmp_path / "customers.csv"
    customers.write_text(CUSTOMERS)
    creds = tmp_path / "creds.csv"
    run = _sealcard(
        "issuer", "user", "import", "--file", str(customers), "--credentials-out", str(creds),
        "--home", str(home), "--json",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    payload = json.loads(run.stdout)
    assert payload["ok"] is True and payload["customers"] == 2
    password = creds.read_text().splitlines()[1].split(",")[2]
    assert password not in run.stdout + run.stderr  # the secret went to the file only
    again = _sealcard(
        "issuer", "user", "import", "--file", str(customers),
        "--credentials-out", str(tmp_path / "c2.csv"), "--home", str(home),
    )  # fmt: skip
    assert again.returncode == 1
    assert again.stderr.startswith("error: 2 customer number(s) exist already")
    assert len(again.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c2.csv").exists()
    exists = _sealcard(
        "issuer", "user", "import", "--file", str(customers), "--credentials-out", str(creds),
        "--home", str(home),
    )  # fmt: skip
    assert exists.returncode == 2 and "exists" in exists.stderr  # an output in the way: usage
    orders = tmp_path / "orders.csv"
    orders.write_text("customer_ref,channel,pin_source\nC1,activation,none\nC2,bureau,none\n")
    run = _sealcard(
        "issuer", "order", "import", "--file", str(orders), "--home", str(home), "--json"
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["orders"] == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_ref,channel,pin_source\nC1,pigeon,none\n")
    run = _sealcard("issuer", "order", "import", "--file", str(bad), "--home", str(home))
    assert run.returncode == 2 and "line 2: channel 'pigeon'" in run.stderr  # a bad file: usage
    usage = _sealcard("issuer", "order", "--home", str(home))
    assert usage.returncode == 2 and "--user is required" in usage.stderr
    moved = _sealcard("issuer", "order", "--file", str(orders), "--home", str(home))
    # click 8.1 says "No such option: --file", 8.2+ "No such option '--file'"
    assert moved.returncode == 2 and "No such option" in moved.stderr and "--file" in moved.stderr
