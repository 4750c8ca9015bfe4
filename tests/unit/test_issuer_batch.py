"""Batch sealing on SQLite with the software stand-ins for both HSM roles: what is stored,
FIFO, limits, and resuming after a failure between the two commit points."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from software_hsm import SoftwareDeviceAuthKeys, SoftwareIssuerHsm

from sealcard.crypto import bip32, sealed_blob
from sealcard.hsm.issuer_client import SealRequest, SealResult
from sealcard.issuer.batch import seal_orders, seal_pack
from sealcard.issuer.db import Database
from sealcard.issuer.errors import RecordNotFoundError, SealingError
from sealcard.issuer.fake import FakePack, fabricate_pack
from sealcard.issuer.lifecycle import OrderState
from sealcard.issuer.migrations import apply_migrations
from sealcard.issuer.records import HeldOrder, Records

BASE = "m/44'/0'/0'/0"
SEED = bytes(range(32))
CHUNK = 4


class BreakingHsm:
    """Seals the first `good` batches, then fails every call (an HSM outage, a crash)."""

    def __init__(self, inner: SoftwareIssuerHsm, good: int) -> None:
        self.inner = inner
        self.good = good
        self.calls = 0

    def seal_batch(self, requests: Sequence[SealRequest]) -> list[SealResult]:
        self.calls += 1
        if self.calls > self.good:
            raise ConnectionError("issuer HSM went away")
        return self.inner.seal_batch(requests)


class LyingHsm:
    """Answers with the results in the wrong order."""

    def __init__(self, inner: SoftwareIssuerHsm) -> None:
        self.inner = inner

    def seal_batch(self, requests: Sequence[SealRequest]) -> list[SealResult]:
        return list(reversed(self.inner.seal_batch(requests)))


@pytest.fixture
def records(tmp_path: Path) -> Iterator[Records]:
    db = Database(f"sqlite:///{tmp_path / 'issuer.db'}")
    apply_migrations(db)
    r = Records(db, "tester")
    r.initialize(BASE)
    yield r
    r.close()


@pytest.fixture(scope="module")
def pack() -> FakePack:
    return fabricate_pack(12, "P-A", rsa_pool=3)


def _setup(records: Records, pack: FakePack, orders: int) -> list[int]:
    records.import_pack(pack.pack_serial, pack.cards)
    records.record_mailers(["m1"])
    user = records.add_user("Ada", "1 Main St")
    return [o.id for o in records.request_orders(user.id, orders, mailer_id="m1")]


def _check_all_sealed(
    records: Records, pack: FakePack, hsm: SoftwareIssuerHsm, ids: list[int]
) -> None:
    root = bip32.ExtendedPrivateKey.from_seed(SEED)
    serials, indexes = set(), set()
    for order_id in ids:
        order = records.get_order(order_id)
        assert order.state is OrderState.SEALED
        out = records.sealed_output(order_id)
        assert out.card_serial == order.card_serial
        payload = sealed_blob.open_blob(
            out.sealed_blob,
            out.card_serial,
            pack.device_keys[out.card_serial],
            hsm.issuer_public_key(),
        )
        expected = root.derive(out.derivation_path)
        assert payload.user_private_key == expected.private_key
        assert out.user_public_key == expected.public_key
        assert payload.device_auth_public_key == out.device_auth_public_key
        assert payload.pin is not None and out.pin_letter is not None
        serials.add(out.card_serial)
        indexes.add(order.derivation_index)
    assert len(serials) == len(ids)
    assert len(indexes) == len(ids)


def test_seal_pack_stores_blobs_that_open_to_the_derived_key(
    records: Records, pack: FakePack
) -> None:
    ids = _setup(records, pack, 10)
    hsm = SoftwareIssuerHsm(SEED)
    auth = SoftwareDeviceAuthKeys()
    seen: list[tuple[int, int]] = []
    report = seal_pack(
        records,
        "P-A",
        auth,
        hsm,
        chunk_size=CHUNK,
        progress=lambda done, total: seen.append((done, total)),
        issuer_public_key=hsm.issuer_public_key(),
    )
    assert report.sealed == 10 and report.resumed == 0 and report.stopped == "done"
    assert report.chunks == 3 and hsm.batches == 3
    assert seen == [(4, 10), (8, 10), (10, 10)]
    # the database's CPU (bench/seal_batch.py's floor) is counted, and by one thread only
    assert 0 < report.timings.database_cpu <= report.seconds
    _check_all_sealed(records, pack, hsm, ids)
    out = records.sealed_output(ids[0])
    key = auth.unwrap(out.device_auth_wrapped_key)
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert point == out.device_auth_public_key
    assert out.device_auth_wrapped_key != key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert records.status().next_derivation_index == 10
    actions = [e.action for e in records.audit_entries()]
    assert actions.count("order.sealed") == 10
    assert actions.count("order.card_assigned") == 10


def test_no_cards_left_stops_with_a_reason(records: Records, pack: FakePack) -> None:
    ids = _setup(records, pack, 15)
    report = seal_orders(
        records, SoftwareDeviceAuthKeys(), SoftwareIssuerHsm(SEED), chunk_size=CHUNK
    )
    assert report.sealed == 12 and report.stopped == "no_cards"
    states = [records.get_order(i).state for i in ids]
    assert states == [OrderState.SEALED] * 12 + [OrderState.REQUESTED] * 3


def test_limit_and_order_selection(records: Records, pack: FakePack) -> None:
    ids = _setup(records, pack, 6)
    report = seal_orders(records, SoftwareDeviceAuthKeys(), SoftwareIssuerHsm(SEED), limit=2)
    assert report.sealed == 2 and report.stopped == "limit"
    report = seal_orders(
        records, SoftwareDeviceAuthKeys(), SoftwareIssuerHsm(SEED), order_ids=[ids[5]]
    )
    assert report.sealed == 1
    states = [records.get_order(i).state.value for i in ids]
    assert states == ["sealed", "sealed", "requested", "requested", "requested", "sealed"]


def test_unknown_pack_is_refused(records: Records) -> None:
    with pytest.raises(RecordNotFoundError):
        seal_pack(records, "NOPE", SoftwareDeviceAuthKeys(), SoftwareIssuerHsm(SEED))


def test_pin_source_none_has_no_pin_and_no_letter(records: Records, pack: FakePack) -> None:
    records.import_pack(pack.pack_serial, pack.cards)
    user = records.add_user("Bo", "2 Main St")
    (order,) = records.request_orders(user.id, pin_source="none")
    hsm = SoftwareIssuerHsm(SEED)
    seal_orders(records, SoftwareDeviceAuthKeys(), hsm)
    out = records.sealed_output(order.id)
    assert out.pin_letter is None
    payload = sealed_blob.open_blob(
        out.sealed_blob, out.card_serial, pack.device_keys[out.card_serial], hsm.issuer_public_key()
    )
    assert payload.pin is None and payload.puk is None


def test_hsm_failure_then_resume_loses_and_duplicates_nothing(
    records: Records, pack: FakePack
) -> None:
    ids = _setup(records, pack, 10)
    hsm = SoftwareIssuerHsm(SEED)
    broken = BreakingHsm(hsm, good=1)
    with pytest.raises(ConnectionError):
        seal_orders(records, SoftwareDeviceAuthKeys(), broken, chunk_size=CHUNK)
    states = [records.get_order(i).state for i in ids]
    assert states[:CHUNK] == [OrderState.SEALED] * CHUNK
    assert OrderState.CARD_ASSIGNED in states  # reserved at commit point A, not sealed
    reserved = {
        i: records.get_order(i)
        for i in ids
        if records.get_order(i).state is OrderState.CARD_ASSIGNED
    }
    next_index = records.status().next_derivation_index

    report = seal_orders(records, SoftwareDeviceAuthKeys(), hsm, chunk_size=CHUNK)
    assert report.resumed == len(reserved)
    assert report.sealed == 10 - CHUNK
    for order_id, before in reserved.items():  # resumed with the same card and element
        after = records.get_order(order_id)
        assert (after.card_serial, after.derivation_index) == (
            before.card_serial,
            before.derivation_index,
        )
    _check_all_sealed(records, pack, hsm, ids)
    assert records.status().next_derivation_index == next_index + (10 - CHUNK - len(reserved))
    assert len(records.derivation_elements()) == 10


def test_mismatched_hsm_answer_stores_nothing(records: Records, pack: FakePack) -> None:
    ids = _setup(records, pack, 3)
    with pytest.raises(SealingError):
        seal_orders(records, SoftwareDeviceAuthKeys(), LyingHsm(SoftwareIssuerHsm(SEED)))
    assert {records.get_order(i).state for i in ids} == {OrderState.CARD_ASSIGNED}
    with pytest.raises(RecordNotFoundError):
        records.sealed_output(ids[0])


def test_blob_signed_by_another_issuer_key_is_refused(records: Records, pack: FakePack) -> None:
    ids = _setup(records, pack, 2)
    other = SoftwareIssuerHsm(os.urandom(32))
    with pytest.raises(SealingError, match="signature"):
        seal_orders(
            records,
            SoftwareDeviceAuthKeys(),
            SoftwareIssuerHsm(SEED),
            issuer_public_key=other.issuer_public_key(),
        )
    assert {records.get_order(i).state for i in ids} == {OrderState.CARD_ASSIGNED}


class RefusingHsm:
    """Refuses some orders as the issuer HSM does a card it cannot seal; seals the rest."""

    def __init__(self, inner: SoftwareIssuerHsm, refuse: set[int]) -> None:
        self.inner = inner
        self.refuse = {str(i) for i in refuse}

    def seal_batch(self, requests: Sequence[SealRequest]) -> list[SealResult]:
        good = [r for r in requests if r.order_id not in self.refuse]
        sealed = iter(self.inner.seal_batch(good))
        return [
            SealResult.refused(r.order_id, "unknown-mailer", f"no mailer {r.mailer_id!r}")
            if r.order_id in self.refuse
            else next(sealed)
            for r in requests
        ]


def test_a_refused_order_is_held_and_the_rest_of_its_batch_sealed(
    records: Records, pack: FakePack
) -> None:
    ids = _setup(records, pack, 10)
    bad = ids[5]  # in the middle of the second chunk
    hsm = SoftwareIssuerHsm(SEED)
    report = seal_orders(
        records, SoftwareDeviceAuthKeys(), RefusingHsm(hsm, {bad}), chunk_size=CHUNK
    )
    assert report.sealed == 9 and report.stopped == "done"
    assert report.held == [HeldOrder(bad, "unknown-mailer: no mailer 'm1'")]
    held = records.get_order(bad)
    assert held.held and held.state is OrderState.CARD_ASSIGNED
    assert held.failure_reason == "unknown-mailer: no mailer 'm1'"
    _check_all_sealed(records, pack, hsm, [i for i in ids if i != bad])
    assert [o.id for o in records.list_orders(held=True)] == [bad]
    assert records.status().held_orders == 1

    again = seal_orders(records, SoftwareDeviceAuthKeys(), hsm, chunk_size=CHUNK)
    assert again.sealed == 0 and again.resumed == 0 and again.held == []  # skipped, not retried

    records.retry_order(bad)
    retried = seal_orders(records, SoftwareDeviceAuthKeys(), hsm, chunk_size=CHUNK)
    assert retried.sealed == 1 and retried.resumed == 1
    after = records.get_order(bad)
    assert (after.card_serial, after.derivation_index) == (held.card_serial, held.derivation_index)
    _check_all_sealed(records, pack, hsm, ids)
    actions = [e.action for e in records.audit_entries(order_id=bad)]
    assert actions == [
        "order.request",
        "order.card_assigned",
        "order.held",
        "order.retry",
        "order.sealed",
    ]


def test_a_cancelled_held_order_keeps_its_card_and_element_out_of_use(
    records: Records, pack: FakePack
) -> None:
    ids = _setup(records, pack, 3)
    seal_orders(records, SoftwareDeviceAuthKeys(), RefusingHsm(SoftwareIssuerHsm(SEED), {ids[1]}))
    held = records.get_order(ids[1])
    cancelled = records.cancel_order(ids[1], note="mailer retired")
    assert cancelled.state is OrderState.CANCELLED and not cancelled.held
    assert cancelled.failure_reason is not None
    assert cancelled.failure_reason.startswith("cancelled: mailer retired (was on hold:")
    user = records.add_user("Cy", "3 Main St")
    (new,) = records.request_orders(user.id, mailer_id="m1")
    seal_orders(records, SoftwareDeviceAuthKeys(), SoftwareIssuerHsm(SEED))
    fresh = records.get_order(new.id)
    assert fresh.state is OrderState.SEALED
    assert fresh.card_serial != held.card_serial
    assert fresh.derivation_index != held.derivation_index


class OneBadSignatureHsm:
    """Seals, but the second blob of each batch carries another key's signature."""

    def __init__(self, inner: SoftwareIssuerHsm) -> None:
        self.inner = inner
        self.other = SoftwareIssuerHsm(os.urandom(32))

    def seal_batch(self, requests: Sequence[SealRequest]) -> list[SealResult]:
        results = self.inner.seal_batch(requests)
        if len(results) > 1:
            forged = self.other.seal_batch(requests[1:2])[0]
            results[1] = SealResult(
                results[1].order_id,
                forged.sealed_blob,
                results[1].user_public_key,
                results[1].pin_letter,
            )
        return results


def test_one_blob_per_chunk_is_checked_unless_every_blob_is_asked_for(
    records: Records, pack: FakePack
) -> None:
    """The reply carrying the blobs is signed by the issuer key (checked by the client), so
    the sealer checks one blob's signature per chunk; --verify-every-blob checks them all."""
    ids = _setup(records, pack, 4)
    hsm = SoftwareIssuerHsm(SEED)
    with pytest.raises(SealingError, match="signature"):
        seal_orders(
            records,
            SoftwareDeviceAuthKeys(),
            OneBadSignatureHsm(hsm),
            chunk_size=4,
            issuer_public_key=hsm.issuer_public_key(),
            verify_every_blob=True,
        )
    assert {records.get_order(i).state for i in ids} == {OrderState.CARD_ASSIGNED}
    report = seal_orders(
        records,
        SoftwareDeviceAuthKeys(),
        OneBadSignatureHsm(hsm),
        chunk_size=4,
        issuer_public_key=hsm.issuer_public_key(),
    )
    assert report.sealed == 4  # the first blob checked, the forged second one not


def test_several_chunks_in_flight_store_every_order_once(records: Records, pack: FakePack) -> None:
    ids = _setup(records, pack, 12)
    hsm = SoftwareIssuerHsm(SEED)
    seen: list[tuple[int, int]] = []
    report = seal_orders(
        records,
        SoftwareDeviceAuthKeys(),
        hsm,
        chunk_size=2,
        chunks_in_flight=4,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert report.sealed == 12 and report.chunks == 6
    assert seen == [(2 * k, 12) for k in range(1, 7)]  # commit points in order
    _check_all_sealed(records, pack, hsm, ids)


class GatedHsm:
    """Holds its first call until `release` is set (a sealer caught in the middle)."""

    def __init__(self, inner: SoftwareIssuerHsm) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()

    def seal_batch(self, requests: Sequence[SealRequest]) -> list[SealResult]:
        self.entered.set()
        assert self.release.wait(30)
        return self.inner.seal_batch(requests)


def test_on_sqlite_a_second_sealer_is_refused_or_waits_its_turn(
    records: Records, pack: FakePack
) -> None:
    """One sealer per SQLite file: a batch beside a running one is refused at once; a seal
    that may wait (activation's) runs once the first is done."""
    ids = _setup(records, pack, 3)
    hsm = SoftwareIssuerHsm(SEED)
    gated = GatedHsm(hsm)
    first = threading.Thread(
        target=seal_orders,
        args=(records, SoftwareDeviceAuthKeys(), gated),
        kwargs={"order_ids": ids[:1]},
    )
    second = Records.open(records.db.url, "second sealer")  # another process's connection
    first.start()
    try:
        assert gated.entered.wait(30)
        with pytest.raises(SealingError, match="another sealer is sealing"):
            seal_orders(second, SoftwareDeviceAuthKeys(), hsm, order_ids=ids[1:2])
        threading.Timer(0.3, gated.release.set).start()
        report = seal_orders(
            second, SoftwareDeviceAuthKeys(), hsm, order_ids=ids[1:2], wait_for_sealer_s=30
        )
    finally:
        gated.release.set()
        first.join(30)
        second.close()
    assert report.sealed == 1
    assert [records.get_order(i).state for i in ids[:2]] == [OrderState.SEALED] * 2
