"""The sealed files between the parties, as their operators meet them: the installed `sealcard`
executable, each party in its own home, simulated cards.

- every refusal of a pack file (tampered, truncated, addressed to another party, unknown
  signer, wrong role, forged sender, unknown version, replay): exit code 1, one line, JSON
  `ok` false, and nothing taken into stock; an output path in the way: exit code 2;
- a provider run and a bureau run killed with SIGKILL in the middle, then run again: every
  card ends up in the pack once and personalized once, the PIN letters the bureau made
  (FIG. 2) open the cards they were made for, and the issuer's orders go the whole way;
- the bureau checks its file and every output path before it touches a card;
- a run of the bureau repeated after success changes nothing at the issuer.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from party_world import NAMES, PartyWorld, write_as, write_raw
from simcards import reset_blank
from soft_party import SoftPartyKey

from sealcard.card.constants import State
from sealcard.card.session import SealcardSession
from sealcard.formats.party_cert import PartyBundle
from sealcard.formats.party_csv import FileHeader, FileKind, PartyName, Role
from sealcard.parties.exchange import Peer
from sealcard.parties.provider_pack import PackJournal
from sealcard.transport.pcsc import PcscConnection

pytestmark = pytest.mark.sim


@pytest.fixture(scope="module")
def world(service_dirs: Callable[[str], Path]) -> Iterator[PartyWorld]:
    # the issuer HSM service runs as its own user: the issuer home must be where it reaches
    world = PartyWorld.create(service_dirs("party-world"))
    try:
        yield world
    finally:
        world.stop()


def _blank(cards: list[Any]) -> list[str]:
    for card in cards:
        reset_blank(card)
    return [card.reader for card in cards]


def _readers(readers: list[str]) -> list[str]:
    return [arg for reader in readers for arg in ("--reader", reader)]


def _state(reader: str) -> State:
    with PcscConnection.open(reader) as connection:
        return SealcardSession(connection).refresh_status().state


def _stock(world: PartyWorld) -> dict[str, int]:
    packs = world.run("issuer", "pack", "list").ok().payload["packs"]
    return {p["pack_serial"]: p["cards"] for p in packs}


def _pack(world: PartyWorld, pack: str, readers: list[str]) -> Path:
    world.run("provider", "init-pack", "--pack", pack, *_readers(readers)).ok()
    path = world.outbox("provider") / f"device-init-{pack}.p7m"
    assert path.is_file()
    return path


def _orders(world: PartyWorld, pack: str, count: int, pin_source: str) -> None:
    """`count` orders sealed with the cards of `pack` (other tests left cards in stock)."""
    for i in range(count):
        user = world.run(
            "issuer", "user", "add", "--name", f"Card Holder {i}", "--address", f"{i} Road\nTown"
        ).ok()
        world.run(
            "issuer", "order", "--user", str(user.payload["user"]["id"]),
            "--pin-source", pin_source, "--mailer", NAMES["mailer"],
        ).ok()  # fmt: skip
    world.run("issuer", "seal", "--pack", pack).ok()


def _export(world: PartyWorld) -> dict[str, Any]:
    report = world.run("issuer", "export", "--bureau", NAMES["bureau"]).ok().payload
    assert len(report["batches"]) == 1
    batch: dict[str, Any] = report["batches"][0]
    return batch


# -- pack files: every refusal, nothing taken in ----------------------------------------------


def test_pack_file_refusals_take_nothing_in(world: PartyWorld, sim_cards: list[Any]) -> None:
    readers = _blank(sim_cards[:2])
    good = _pack(world, "REFUSALS-1", readers)
    data = good.read_bytes()
    bad = world.root / "bad"
    bad.mkdir()
    middle = len(data) // 2
    (bad / "tampered.p7m").write_bytes(
        data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1 :]
    )
    (bad / "truncated.p7m").write_bytes(data[: len(data) - 40])
    rows = list(PackJournal(world.home("provider") / "packs" / "REFUSALS-1.jsonl").rows())
    issuer_peer = Peer(PartyBundle.parse(world.cert("issuer").read_bytes()))
    other_issuer = SoftPartyKey(Role.ISSUER, "other-bank")
    rogue = SoftPartyKey(Role.PROVIDER, "rogue")

    def header(sender: PartyName, to: PartyName, version: int = 1) -> FileHeader:
        return FileHeader(
            FileKind.DEVICE_INIT, "REFUSALS-1", len(rows), sender, (to,), version=version
        )

    me = PartyName(Role.PROVIDER, NAMES["provider"])
    bank = issuer_peer.party
    bureau_name = PartyName(Role.BUREAU, NAMES["bureau"])
    other = other_issuer.party
    to_bank = [world.cert("issuer").read_bytes()]
    provider_home, bureau_home = world.home("provider"), world.home("bureau")
    to_other = [other_issuer.cert_pem()]
    write_as("provider", provider_home, bad / "elsewhere.p7m", to_other, header(me, other), rows)
    write_as("provider", provider_home, bad / "version.p7m", to_bank, header(me, bank, 2), rows)
    # a bureau's file that says it comes from the provider, and one that says it is the bureau's
    write_as("bureau", bureau_home, bad / "forged.p7m", to_bank, header(me, bank), rows)
    write_as("bureau", bureau_home, bad / "role.p7m", to_bank, header(bureau_name, bank), rows)
    write_raw(bad / "stranger.p7m", rogue, [issuer_peer], header(rogue.party, bank), rows)
    expected = {
        "tampered": r"tampered: ",
        "truncated": r"truncated",
        "elsewhere": r"addressed to another party \(issuer:other-bank|other-bank",
        "version": r"unknown format version 2",
        "forged": r"signed by bureau:print-house",
        "role": r"cannot come from a bureau",
        "stranger": r"unknown party",
    }
    before = _stock(world)
    for name in expected:
        path = bad / f"{name}.p7m"
        as_text = world.run(
            "issuer", "pack", "import", "--file", str(path), as_json=False
        ).refused()
        assert re.search(expected[name], as_text.err), (name, as_text.err)
        as_json = world.run("issuer", "pack", "import", "--file", str(path)).refused()
        assert re.search(expected[name], as_json.payload["message"]), (name, as_json.payload)
        assert _stock(world) == before, name
    world.run("issuer", "pack", "import", "--file", str(good)).ok()
    assert _stock(world) == {**before, "REFUSALS-1": 2}
    replay = world.run("issuer", "pack", "import", "--file", str(good), as_json=False).refused()
    assert "already imported" in replay.err
    assert _stock(world) == {**before, "REFUSALS-1": 2}


# -- provider and bureau killed and resumed ---------------------------------------------------


def test_provider_and_bureau_killed_then_resumed(world: PartyWorld, sim_cards: list[Any]) -> None:
    readers = _blank(sim_cards[:4])
    provider = world.start("provider", "init-pack", "--pack", "KILLED-1", *_readers(readers))
    world.kill_after_line(provider, "initialized")
    resumed = world.run("provider", "init-pack", "--pack", "KILLED-1", *_readers(readers)).ok()
    outcomes = [r["outcome"] for r in resumed.payload["readers"]]
    assert "already in the pack" in outcomes, outcomes  # the card journaled before the kill
    assert resumed.payload["cards"] == 4
    path = Path(resumed.payload["file"])
    world.run("issuer", "pack", "import", "--file", str(path)).ok()
    assert _stock(world)["KILLED-1"] == 4

    _orders(world, "KILLED-1", 4, "none")  # FIG. 2: the bureau makes PIN and PUK
    batch = _export(world)
    bureau = world.start(
        *("bureau", "personalize", "--file", batch["personalization"]),
        *("--pin-source", "bureau", *_readers(readers)),
    )
    world.kill_after_line(bureau, "personalized")
    again = world.run(
        *("bureau", "personalize", "--file", batch["personalization"]),
        *("--pin-source", "bureau", *_readers(readers)),
    ).ok()
    assert again.payload["resumed"] is True
    totals = again.payload["totals"]
    assert totals.get("personalized", 0) + totals.get("already_personalized", 0) == 4, totals
    assert all(_state(r) == State.PERSONALIZED for r in readers)

    files = again.payload["files"]
    # The shipper ships before the issuer took the batch's results in: its confirmation is
    # refused, saying which file goes first, and nothing of it is taken in.
    shipped = world.run("shipper", "manifest", "--file", files["shipping"]).ok()
    confirmation = shipped.payload["confirmation"]
    early = world.run("issuer", "receive", "--file", confirmation, as_json=False).refused(1)
    assert f"take in results-{batch['batch']}.p7m first" in early.err, early.err
    early_json = world.run("issuer", "receive", "--file", confirmation).refused(1)
    assert early_json.payload["error"] == "FileRefusedError", early_json.payload
    # Given together, in any order, the results go in first and then the rest.
    applied = world.run(
        *("issuer", "receive", "--file", confirmation),
        *("--file", files["shipping"], "--file", files["results"]),
    ).ok()
    counts = {a["kind"]: a["counts"] for a in applied.payload["applied"]}
    assert counts == {
        "personalization-results": {"personalized": 4},
        "shipping-data": {"handed_to_shipper": 4},
        "ship-confirmation": {"shipped": 4},
    }, counts

    # The letters the bureau stored before touching each card hold that card's PIN.
    letters = world.run("mailer", "letters", "--file", files[f"pin_letters_{NAMES['mailer']}"]).ok()
    assert letters.payload["printed"] == 4
    pins = _pins_from_pdf(Path(letters.payload["letters_pdf"]))
    for reader in readers:
        with PcscConnection.open(reader) as connection:
            session = SealcardSession(connection)
            serial = session.refresh_status().serial_hex
            session.verify_pin(pins[serial].encode())

    # The bureau run again after success: all already personalized, nothing moves back.
    third = world.run(
        *("bureau", "personalize", "--file", batch["personalization"]),
        *("--pin-source", "bureau", *_readers(readers)),
    ).ok()
    assert (
        third.payload["totals"] == {"personalized": 4} or sum(third.payload["totals"].values()) == 4
    )
    rerun = world.run("issuer", "receive", "--file", third.payload["files"]["results"]).ok()
    assert rerun.payload["applied"][0]["counts"] == {"already": 4}


def _pins_from_pdf(pdf: Path) -> dict[str, str]:
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    pins = {}
    for page in text.split("\f"):
        serial = re.search(r"Card serial: ([0-9A-F]+)", page)
        pin = re.search(r"PIN: ([0-9]+)", page)
        if serial and pin:
            pins[serial.group(1)] = pin.group(1)
    return pins


# -- the bureau checks everything before it touches a card ------------------------------------


def test_bureau_refuses_before_touching_a_card(world: PartyWorld, sim_cards: list[Any]) -> None:
    readers = _blank(sim_cards[:2])
    world.run("issuer", "pack", "import", "--file", str(_pack(world, "CHECKS-1", readers))).ok()
    _orders(world, "CHECKS-1", 2, "hsm")
    batch = _export(world)
    jobs = world.home("bureau") / "jobs"
    before = sorted(p.name for p in jobs.glob("*.db")) if jobs.exists() else []

    blocker = world.root / "a-file"
    blocker.write_text("not a folder")
    unwritable = world.run(
        "bureau", "personalize", "--file", batch["personalization"],
        "--out-dir", str(blocker / "out"),
        *_readers(readers), as_json=False,
    ).usage()  # fmt: skip
    assert str(blocker / "out") in unwritable.err

    data = Path(batch["personalization"]).read_bytes()
    damaged = world.root / "damaged.p7m"
    damaged.write_bytes(data[:-100] + bytes(100))
    world.run("bureau", "personalize", "--file", str(damaged), *_readers(readers)).refused()

    not_ours = world.run(
        "shipper", "manifest", "--file", batch["personalization"], as_json=False
    ).refused()
    assert "error: " in not_ours.err

    assert all(_state(r) == State.INITIALIZED for r in readers)
    after = sorted(p.name for p in jobs.glob("*.db")) if jobs.exists() else []
    assert after == before  # no job was taken in

    # An output path that cannot be written (known once the file named its batch).
    out = world.root / "out"
    (out / f"results-{batch['batch']}.p7m").mkdir(parents=True)
    in_the_way = world.run(
        "bureau", "personalize", "--file", batch["personalization"], "--out-dir", str(out),
        *_readers(readers), as_json=False,
    ).usage()  # fmt: skip
    assert f"results-{batch['batch']}.p7m: it is a folder" in in_the_way.err
    assert all(_state(r) == State.INITIALIZED for r in readers)

    done = world.run(
        "bureau", "personalize", "--file", batch["personalization"], *_readers(readers)
    ).ok()
    assert done.payload["totals"] == {"personalized": 2}
