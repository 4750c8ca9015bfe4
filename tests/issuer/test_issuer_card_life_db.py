"""Schema 2 and 3 on both engines: the migration from schema 1, replacement with the same
derivation element, the element-owner trigger, bulk intake and single-use challenges."""

from __future__ import annotations

import pytest
from schema_one import write_schema_1_stock
from software_hsm import SoftwareDeviceAuthKeys, SoftwareIssuerHsm

from sealcard.issuer.accounts import Accounts, Challenge
from sealcard.issuer.batch import seal_orders
from sealcard.issuer.db import Database
from sealcard.issuer.errors import IssuerError
from sealcard.issuer.fake import fabricate_pack
from sealcard.issuer.lifecycle import OrderState
from sealcard.issuer.migrations import apply_migrations, latest_version
from sealcard.issuer.records import Records
from sealcard.parties.issuer.context import IssuerContext
from sealcard.parties.issuer.intake import import_customers_csv

pytestmark = pytest.mark.issuer
BASE = "m/44'/0'/0'/0"


def test_schema_1_data_survives_and_replacement_works(any_db_url: str) -> None:
    db = Database(any_db_url)
    apply_migrations(db, target=1)
    pack = fabricate_pack(3, "P-DB", rsa_pool=1)
    write_schema_1_stock(db, BASE, pack)
    with db.transaction() as tx:
        tx.execute("INSERT INTO users (name, address, created_at) VALUES ('Ada', 'x', 'then')")
        user_id = int(tx.scalar("SELECT id FROM users"))
        order_id = int(
            tx.scalar(
                "INSERT INTO orders (user_id, state, pin_source, created_at, updated_at)"
                " VALUES (?, 'requested', 'none', 'then', 'then') RETURNING id",
                (user_id,),
            )
        )
    assert apply_migrations(db) == list(range(2, latest_version() + 1))
    records = Records(db, "tester")
    hsm = SoftwareIssuerHsm(bytes(32))
    seal_orders(records, SoftwareDeviceAuthKeys(), hsm)
    records.advance_order(order_id, OrderState.SENT_TO_BUREAU)
    records.advance_order(order_id, OrderState.PERSONALIZED)
    records.mark_lost(order_id)
    new = records.request_replacement(order_id, pin_source="none")
    seal_orders(records, SoftwareDeviceAuthKeys(), hsm)
    first, second = records.sealed_output(order_id), records.sealed_output(new.id)
    assert first.user_public_key == second.user_public_key
    assert first.card_serial != second.card_serial
    other = records.add_user("Eve", "y")
    with pytest.raises(IssuerError, match="its own user"), db.transaction() as tx:
        tx.execute("UPDATE orders SET user_id = ? WHERE id = ?", (other.id, new.id))
    db.close()


def test_intake_and_challenges(any_db_url: str) -> None:
    db = Database(any_db_url)
    apply_migrations(db)
    records = Records(db, "tester")
    records.initialize(BASE)
    ctx = IssuerContext(records)
    lines = "".join(f"K{i},Person {i},{i} Road\n" for i in range(300))
    intake = import_customers_csv(ctx, "customer_ref,name,address\n" + lines)
    assert intake.users == 300
    assert [c.user_id for c in intake.credentials] == sorted(c.user_id for c in intake.credentials)
    assert records.users_by_ref(["K0", "K299"]) == {
        "K0": intake.credentials[0].user_id,
        "K299": intake.credentials[-1].user_id,
    }
    accounts = Accounts(records)
    found = accounts.by_login("K7")
    assert found is not None and found[0].user_id == intake.credentials[7].user_id
    account_id = found[0].id
    accounts.new_challenge(
        Challenge("c1", account_id, "activation", b"\x01" * 32, None, None, "9999-12-31")
    )
    assert accounts.take_challenge("c1", account_id + 1, "activation", "2026") is None
    assert accounts.take_challenge("c1", account_id, "card-command", "2026") is None
    taken = accounts.take_challenge("c1", account_id, "activation", "2026")
    assert taken is not None and taken.challenge == b"\x01" * 32
    assert accounts.take_challenge("c1", account_id, "activation", "2026") is None  # replay
    db.close()
