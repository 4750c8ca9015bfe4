"""The issuer's sealed files, with the keys in the test's memory: export to the bureau and the
mailer, and every file that comes back (results, shipping data, confirmations), including each
refusal with nothing taken in."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from soft_party import SoftPartyKey
from software_hsm import SoftwareDeviceAuthKeys, SoftwareIssuerHsm

from sealcard.crypto import sealed_blob
from sealcard.formats.party_cert import PartyBundle
from sealcard.formats.party_csv import CsvReader, FileKind, PartyName, Role, parse_serial, unb64
from sealcard.formats.sealed_file import SealedFileReader, receiver_key
from sealcard.issuer import exchange_records as xr
from sealcard.issuer.batch import seal_orders
from sealcard.issuer.db import Database
from sealcard.issuer.errors import IssuerError
from sealcard.issuer.fake import FakePack, fabricate_pack
from sealcard.issuer.lifecycle import OrderState
from sealcard.issuer.migrations import apply_migrations
from sealcard.issuer.records import Records
from sealcard.parties.exchange import FileRefusedError, Identity, Peer, write_party_file
from sealcard.parties.issuer_exchange import (
    DbPeers,
    IssuerParty,
    export_batches,
    receive_file,
)

SEED = bytes(range(32, 64))
ORDERS = 5


def peer(key: SoftPartyKey) -> Peer:
    return Peer(PartyBundle(key.certificate, key.role, key.name))


@dataclass
class World:
    records: Records
    pack: FakePack
    hsm: SoftwareIssuerHsm
    issuer: IssuerParty
    issuer_key: SoftPartyKey
    bureau: SoftPartyKey
    mailer: SoftPartyKey
    shipper: SoftPartyKey
    out: Path

    def identity(self, key: SoftPartyKey) -> Identity:
        return Identity(key.party, key)

    def states(self) -> dict[bytes, OrderState]:
        return {o.card_serial: o.state for o in self.records.list_orders() if o.card_serial}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    db = Database(f"sqlite:///{tmp_path / 'issuer.db'}")
    apply_migrations(db)
    records = Records(db, "tester")
    records.initialize("m/44'/0'/0'/0")
    pack = fabricate_pack(ORDERS, "P-H", rsa_pool=2)
    records.import_pack(pack.pack_serial, pack.cards)
    user = records.add_user("Zoë O'Brien", '12 "The" Lane\nÅlesund')
    records.record_mailers(["post"])
    records.request_orders(user.id, ORDERS, mailer_id="post")
    hsm = SoftwareIssuerHsm(SEED)
    assert seal_orders(records, SoftwareDeviceAuthKeys(), hsm, chunk_size=2).sealed == ORDERS
    issuer_key = SoftPartyKey(Role.ISSUER, "bank")
    bureau = SoftPartyKey(Role.BUREAU, "print-house")
    mailer = SoftPartyKey(Role.MAILER, "post")
    shipper = SoftPartyKey(Role.SHIPPER, "courier")
    peers = DbPeers([peer(bureau), peer(mailer), peer(shipper)])
    issuer = IssuerParty(
        None, records, issuer_key, PartyBundle(issuer_key.certificate, Role.ISSUER, "bank"), peers
    )
    yield World(records, pack, hsm, issuer, issuer_key, bureau, mailer, shipper, tmp_path / "out")
    records.close()


def open_as(path: Path, who: SoftPartyKey) -> tuple[CsvReader, list[list[str]]]:
    reader = SealedFileReader(io.BytesIO(path.read_bytes()), receiver_key(who))
    csv_reader = CsvReader(reader.content())
    rows = list(csv_reader.rows())
    reader.finish()
    return csv_reader, rows


def test_export_one_file_per_batch_for_the_bureau_and_letters_for_the_mailer(world: World) -> None:
    report = export_batches(world.issuer, None, world.out, batch_size=2)
    assert [b.orders for b in report.batches] == [2, 2, 1]
    seen = []
    for batch in report.batches:
        reader, rows = open_as(batch.personalization, world.bureau)
        assert reader.header.kind is FileKind.PERSONALIZATION and reader.header.batch == batch.batch
        assert reader.header.sender == PartyName(Role.ISSUER, "bank")
        assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))
        for _position, serial, blob, pins, mailer, name, address in rows:
            card = parse_serial(serial)
            sealed_blob.open_blob(
                unb64(blob, "blob"),
                card,
                world.pack.device_keys[card],
                world.hsm.issuer_public_key(),
            )
            assert (pins, mailer, name, address) == (
                "hsm",
                "post",
                "Zoë O'Brien",
                '12 "The" Lane\nÅlesund',
            )
            seen.append(card)
        letters_reader, letters = open_as(batch.letters["post"], world.mailer)
        assert letters_reader.header.kind is FileKind.PIN_LETTERS
        assert [r[0] for r in letters] == [r[1] for r in rows]
        with pytest.raises(Exception, match="addressed to another party"):
            open_as(batch.personalization, world.mailer)
    assert sorted(seen) == sorted(c.serial for c in world.pack.cards)
    assert set(world.states().values()) == {OrderState.SENT_TO_BUREAU}
    assert export_batches(world.issuer, None, world.out).batches == []


def test_interrupted_export_writes_the_started_batch_again(world: World) -> None:
    xr.reserve_batch(world.records, "B-CRASHED", "print-house", 3)  # files never written
    assert set(world.states().values()) == {OrderState.SEALED}
    report = export_batches(world.issuer, None, world.out, batch_size=10)
    assert (report.batches[0].batch, report.batches[0].orders) == ("B-CRASHED", 3)
    assert sum(b.orders for b in report.batches) == ORDERS
    assert set(world.states().values()) == {OrderState.SENT_TO_BUREAU}


def test_an_order_in_an_unfinished_export_batch_is_not_cancelled(world: World) -> None:
    # its blob is in the batch's personalization file, written again by the next export
    xr.reserve_batch(world.records, "B-CRASHED", "print-house", 2)
    in_batch = [r.order_id for r in xr.batch_rows(world.records, "B-CRASHED")]
    outside = next(o.id for o in world.records.list_orders() if o.id not in in_batch)
    with pytest.raises(IssuerError, match="in export batch B-CRASHED"):
        world.records.cancel_order(in_batch[0])
    assert world.records.get_order(in_batch[0]).state is OrderState.SEALED
    assert world.records.cancel_order(outside).state is OrderState.CANCELLED
    report = export_batches(world.issuer, None, world.out, batch_size=10)
    assert sum(b.orders for b in report.batches) == ORDERS - 1
    assert world.records.get_order(in_batch[0]).state is OrderState.SENT_TO_BUREAU


def results_file(
    world: World,
    path: Path,
    rows: list[list[str]],
    *,
    sender: SoftPartyKey | None = None,
    to: SoftPartyKey | None = None,
    kind: FileKind = FileKind.RESULTS,
) -> Path:
    who = sender or world.bureau
    write_party_file(
        path, world.identity(who), [peer(to or world.issuer_key)], kind, "B-1", len(rows), rows
    )
    return path


def party_file(
    world: World,
    name: str,
    sender: SoftPartyKey,
    kind: FileKind,
    batch: str,
    rows: list[list[str]],
    *,
    also_to: SoftPartyKey | None = None,
) -> Path:
    """A sealed file of `kind` from `sender` to the issuer (and `also_to`), in world.out."""
    path = world.out / name
    receivers = [peer(world.issuer_key)] + ([peer(also_to)] if also_to else [])
    write_party_file(path, world.identity(sender), receivers, kind, batch, len(rows), rows)
    return path


def user_key(world: World, serial: bytes) -> str:
    order = world.records.order_for_card(serial)
    return world.records.sealed_output(order.id).user_public_key.hex()


def row(world: World, serial: bytes, outcome: str, reason: str = "") -> list[str]:
    key = user_key(world, serial) if outcome in ("personalized", "already_personalized") else ""
    return [serial.hex().upper(), outcome, reason, key, "2026-12-01T00:00:00Z"]


def test_results_move_orders_never_backwards_and_a_later_success_repairs(world: World) -> None:
    export_batches(world.issuer, None, world.out)
    a, b, c, d, _e = (card.serial for card in world.pack.cards)
    first = results_file(
        world,
        world.out / "r1.p7m",
        [
            row(world, a, "personalized"),
            row(world, b, "refused", "6A80 blob refused"),
            row(world, c, "not_reached"),
        ],
    )
    report = receive_file(world.issuer, first)
    assert report.counts == {"personalized": 1, "failed": 1, "not_reached": 1}
    states = world.states()
    assert (states[a], states[b], states[c]) == (
        OrderState.PERSONALIZED,
        OrderState.FAILED,
        OrderState.SENT_TO_BUREAU,
    )
    # A rerun of the bureau: b was personalized after all, a is already personalized, a later
    # "refused" for a cannot move it back, d personalized now.
    second = results_file(
        world,
        world.out / "r2.p7m",
        [
            row(world, b, "already_personalized"),
            row(world, a, "refused", "card is PERSONALIZED"),
            row(world, d, "personalized"),
        ],
    )
    report = receive_file(world.issuer, second)
    assert report.counts == {"repaired": 1, "kept": 1, "personalized": 1}
    states = world.states()
    assert (states[a], states[b], states[d]) == (OrderState.PERSONALIZED,) * 3
    actions = [e.action for e in world.records.audit_entries(limit=10_000)]
    assert actions.count("order.personalized") == 3 and "file.personalization-results" in actions


def test_a_card_whose_key_could_not_be_read_is_still_personalized(world: World) -> None:
    """PERSONALIZE answered 9000 but the read of the user key failed (issue 7): the result
    row has no key, and the order still moves to personalized (the audit says unconfirmed)."""
    export_batches(world.issuer, None, world.out)
    a = world.pack.cards[0].serial
    unread = row(world, a, "personalized")
    unread[3] = ""
    report = receive_file(world.issuer, results_file(world, world.out / "r.p7m", [unread]))
    assert report.counts == {"personalized": 1}
    assert world.states()[a] is OrderState.PERSONALIZED
    entries = world.records.audit_entries(limit=10_000)
    moved = [e for e in entries if e.action == "order.personalized"]
    assert moved[-1].detail["user_key_confirmed"] is False


def assert_refused(world: World, path: Path, reason: str) -> None:
    before = (world.states(), len(world.records.audit_entries(limit=100_000)))
    with pytest.raises(FileRefusedError, match=reason):
        receive_file(world.issuer, path)
    assert (world.states(), len(world.records.audit_entries(limit=100_000))) == before


def test_every_refusal_takes_in_nothing(world: World) -> None:
    export_batches(world.issuer, None, world.out)
    cards = [card.serial for card in world.pack.cards]
    good = results_file(
        world, world.out / "good.p7m", [row(world, s, "personalized") for s in cards]
    )
    data = good.read_bytes()
    # tampered, truncated
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 4
    (world.out / "tampered.p7m").write_bytes(bytes(flipped))
    assert_refused(world, world.out / "tampered.p7m", "tampered")
    (world.out / "truncated.p7m").write_bytes(data[: len(data) - 40])
    assert_refused(world, world.out / "truncated.p7m", "truncated")
    # forged: unsigned JSON as the old results.json was; and a file signed by a stranger
    (world.out / "forged.json").write_text('{"cards": [{"serial": "00", "personalized": false}]}')
    assert_refused(world, world.out / "forged.json", "not a sealed party file")
    stranger = SoftPartyKey(Role.BUREAU, "print-house")  # same name, another key
    assert_refused(
        world,
        results_file(
            world, world.out / "stranger.p7m", [row(world, cards[0], "refused")], sender=stranger
        ),
        "unknown party",
    )
    # wrong role: the mailer signs results
    assert_refused(
        world,
        results_file(
            world, world.out / "mailer.p7m", [row(world, cards[0], "refused")], sender=world.mailer
        ),
        "cannot come from a mailer",
    )
    # addressed to another issuer
    other = SoftPartyKey(Role.ISSUER, "other-bank")
    assert_refused(
        world,
        results_file(world, world.out / "other.p7m", [row(world, cards[0], "refused")], to=other),
        "addressed to another party",
    )
    # a user key the issuer did not seal for that card
    wrong = row(world, cards[0], "personalized")
    wrong[3] = user_key(world, cards[1])
    assert_refused(
        world,
        results_file(
            world, world.out / "wrongkey.p7m", [row(world, cards[2], "personalized"), wrong]
        ),
        "another user key",
    )
    # the same file twice
    assert receive_file(world.issuer, good).counts == {"personalized": ORDERS}
    assert_refused(world, good, "already imported")


def test_shipping_before_the_batchs_results_is_refused_saying_what_first(world: World) -> None:
    # The bureau's shipping data and the shipper's confirmation may only follow that batch's
    # results: a card the issuer still thinks is at the bureau was not shipped by its records.
    export_batches(world.issuer, None, world.out)
    a = world.pack.cards[0].serial
    (batch,) = {
        b.batch_id
        for b in xr.batches(world.records)
        if any(r.serial == a for r in xr.batch_rows(world.records, b.batch_id))
    }
    shipping = party_file(
        world,
        "ship-data.p7m",
        world.bureau,
        FileKind.SHIPPING,
        batch,
        [["1", a.hex().upper(), "Zoë", "addr"]],
        also_to=world.shipper,
    )
    shipped = party_file(
        world,
        "shipped-early.p7m",
        world.shipper,
        FileKind.SHIP_CONFIRMATION,
        batch,
        [[a.hex().upper(), "TRACK-1", "t"]],
    )
    first = (
        rf"the bureau's results for batch {batch} were not taken in yet: take in results-{batch}"
    )
    assert_refused(world, shipping, first)
    assert_refused(world, shipped, first)
    # once the results are in, the very same files go in
    receive_file(
        world.issuer, results_file(world, world.out / "r.p7m", [row(world, a, "personalized")])
    )
    assert receive_file(world.issuer, shipping).counts == {"handed_to_shipper": 1}
    assert receive_file(world.issuer, shipped).counts == {"shipped": 1}
    assert world.states()[a] is OrderState.SHIPPED


def test_shipping_and_confirmations_in_either_order(world: World) -> None:
    export_batches(world.issuer, None, world.out)
    a, b = world.pack.cards[0].serial, world.pack.cards[1].serial
    receive_file(
        world.issuer,
        results_file(
            world,
            world.out / "r.p7m",
            [row(world, a, "personalized"), row(world, b, "personalized")],
        ),
    )
    shipping = [["1", a.hex().upper(), "Zoë", "addr"], ["2", b.hex().upper(), "Zoë", "addr"]]
    path = party_file(
        world, "ship.p7m", world.bureau, FileKind.SHIPPING, "B-1", shipping, also_to=world.shipper
    )
    assert receive_file(world.issuer, path).counts == {"handed_to_shipper": 2}
    # b's PIN letter is mailed before the card ships; a ships first.
    mailed = party_file(
        world,
        "mailed.p7m",
        world.mailer,
        FileKind.MAIL_CONFIRMATION,
        "B-1",
        [[b.hex().upper(), "mailed", "", "t"]],
    )
    assert receive_file(world.issuer, mailed).counts == {"pin_mailed_before_shipping": 1}
    shipped = party_file(
        world,
        "shipped.p7m",
        world.shipper,
        FileKind.SHIP_CONFIRMATION,
        "B-1",
        [[a.hex().upper(), "TRACK-1", "t"], [b.hex().upper(), "TRACK-2", "t"]],
    )
    assert receive_file(world.issuer, shipped).counts == {"shipped": 2, "pin_mailed": 1}
    states = world.states()
    assert (states[a], states[b]) == (OrderState.SHIPPED, OrderState.PIN_MAILED)
    mailed_a = party_file(
        world,
        "mailed-a.p7m",
        world.mailer,
        FileKind.MAIL_CONFIRMATION,
        "B-1",
        [[a.hex().upper(), "mailed", "", "t"]],
    )
    assert receive_file(world.issuer, mailed_a).counts == {"pin_mailed": 1}
    assert world.states()[a] is OrderState.PIN_MAILED


def test_activation_orders_reach_the_mailer_only_after_their_card_took_the_blob(
    world: World,
) -> None:
    """An activation order's blob goes to the customer's computer, never to a bureau; once the
    card took it (`personalized`), its PIN letter goes to the mailer, once, and the mailer's
    confirmation moves it to pin_mailed (nothing is shipped)."""
    records = world.records
    user = records.add_user("Ada", "1 Main St")
    (activation,) = records.request_orders(user.id, mailer_id="post", channel="activation")
    card = fabricate_pack(1, "P-ACT", rsa_pool=1).cards[0]
    with records.db.transaction() as tx:
        records.bind_activation_card(tx, activation.id, card)
    seal_orders(records, SoftwareDeviceAuthKeys(), world.hsm, order_ids=[activation.id])
    report = export_batches(world.issuer, None, world.out, batch_size=10)
    assert report.orders == ORDERS and report.activation_letters == []  # the bureau's only
    sent = set()
    for bureau_batch in report.batches:
        assert bureau_batch.personalization is not None
        sent |= {parse_serial(r[1]) for r in open_as(bureau_batch.personalization, world.bureau)[1]}
    assert card.serial not in sent
    letters = {r[0] for b in report.batches for r in open_as(b.letters["post"], world.mailer)[1]}
    assert card.serial.hex().upper() not in letters  # not before the card holds its blob
    assert records.get_order(activation.id).state is OrderState.SEALED

    records.advance_order(activation.id, OrderState.PERSONALIZED)  # the user system reported
    report = export_batches(world.issuer, None, world.out, batch_size=10)
    assert report.batches == [] and report.letters_after_activation == 1
    (batch,) = report.activation_letters
    assert batch.personalization is None and batch.batch.startswith("A")
    header, rows = open_as(batch.letters["post"], world.mailer)
    assert header.header.kind is FileKind.PIN_LETTERS
    assert [parse_serial(r[0]) for r in rows] == [card.serial]
    assert records.get_order(activation.id).state is OrderState.PERSONALIZED
    assert export_batches(world.issuer, None, world.out).activation_letters == []  # once

    mailed = party_file(
        world,
        "mailed-activation.p7m",
        world.mailer,
        FileKind.MAIL_CONFIRMATION,
        batch.batch,
        [[card.serial.hex().upper(), "mailed", "", "t"]],
    )
    assert receive_file(world.issuer, mailed).counts == {"pin_mailed": 1}
    assert records.get_order(activation.id).state is OrderState.PIN_MAILED
