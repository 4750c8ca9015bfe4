"""Hand-over from the issuer to the bureau and the mailer, and the bureau's results back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from software_hsm import SoftwareDeviceAuthKeys, SoftwareIssuerHsm

from sealcard.crypto import sealed_blob
from sealcard.issuer.batch import seal_orders
from sealcard.issuer.db import Database
from sealcard.issuer.fake import FakePack, fabricate_pack
from sealcard.issuer.handover import (
    BLOB_SUFFIX,
    LETTER_SUFFIX,
    BureauResult,
    apply_bureau_results,
    export_for_bureau,
)
from sealcard.issuer.lifecycle import OrderState
from sealcard.issuer.migrations import apply_migrations
from sealcard.issuer.records import Records

SEED = bytes(range(32, 64))
ORDERS = 5


@pytest.fixture
def sealed(tmp_path: Path) -> Iterator[tuple[Records, FakePack, SoftwareIssuerHsm]]:
    db = Database(f"sqlite:///{tmp_path / 'issuer.db'}")
    apply_migrations(db)
    records = Records(db, "tester")
    records.initialize("m/44'/0'/0'/0")
    pack = fabricate_pack(ORDERS, "P-H", rsa_pool=2)
    records.import_pack(pack.pack_serial, pack.cards)
    user = records.add_user("Ada", "1 Main St")
    records.record_mailers(["post"])
    records.request_orders(user.id, ORDERS, mailer_id="post")
    hsm = SoftwareIssuerHsm(SEED)
    report = seal_orders(records, SoftwareDeviceAuthKeys(), hsm, chunk_size=2)
    assert report.sealed == ORDERS
    yield records, pack, hsm
    records.close()


def test_export_writes_one_blob_per_card_named_by_serial_and_moves_the_orders(
    sealed: tuple[Records, FakePack, SoftwareIssuerHsm], tmp_path: Path
) -> None:
    records, pack, hsm = sealed
    report = export_for_bureau(records, tmp_path / "blobs", tmp_path / "letters")
    assert len(report.blobs) == ORDERS and len(report.letters) == ORDERS
    for path in report.blobs:
        assert path.suffix == BLOB_SUFFIX
        serial = bytes.fromhex(path.stem)
        blob = path.read_bytes()
        assert sealed_blob.parse(blob).serial == serial
        sealed_blob.open_blob(blob, serial, pack.device_keys[serial], hsm.issuer_public_key())
    assert {p.suffix for p in report.letters} == {LETTER_SUFFIX}
    states = {o.state for o in records.list_orders()}
    assert states == {OrderState.SENT_TO_BUREAU}
    assert not list((tmp_path / "blobs").glob(".*.tmp"))


def test_a_second_export_has_nothing_left_to_send(
    sealed: tuple[Records, FakePack, SoftwareIssuerHsm], tmp_path: Path
) -> None:
    records, _, _ = sealed
    export_for_bureau(records, tmp_path / "blobs", None)
    again = export_for_bureau(records, tmp_path / "blobs", None)
    assert again.blobs == [] and again.orders == []


def test_bureau_results_settle_each_order_once(
    sealed: tuple[Records, FakePack, SoftwareIssuerHsm], tmp_path: Path
) -> None:
    records, _, _ = sealed
    report = export_for_bureau(records, tmp_path / "blobs", None)
    serials = [bytes.fromhex(p.stem) for p in report.blobs]
    results = [BureauResult(s, True, "personalized") for s in serials[:-1]]
    results.append(BureauResult(serials[-1], False, "card refused its blob"))
    results.append(BureauResult(b"\x99" * 8, True, "personalized"))
    counts = apply_bureau_results(records, results)
    assert counts == {"personalized": ORDERS - 1, "failed": 1, "unknown": 1}
    by_state = [o.state for o in records.list_orders()]
    assert by_state.count(OrderState.PERSONALIZED) == ORDERS - 1
    assert by_state.count(OrderState.FAILED) == 1
    # The same file again changes nothing: every serial is settled already.
    assert apply_bureau_results(records, results)["unknown"] == len(results)
