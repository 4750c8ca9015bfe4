"""check_platform's decisions and the card-manager decoders, on scripted answers."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from sealcard.card import constants as c
from sealcard.card.card_manager import (
    decode_card_data,
    decode_card_resources,
    decode_cplc,
    read_card_manager,
)
from sealcard.parties.platform_check import (
    NEEDED_PERSISTENT_BYTES,
    NEEDED_TRANSIENT_BYTES,
    Verdict,
    check_platform,
)

OK = 0x9000
NOT_FOUND = 0x6A82

# Card Recognition Data as GlobalPlatform 2.2 cards send it: GP 2.2.1, SCP03 i=10.
CARD_DATA = bytes.fromhex(
    "6631"
    "732F"
    "06072A864886FC6B01"
    "600C060A2A864886FC6B02020201"
    "630906072A864886FC6B03"
    "640B06092A864886FC6B040310"
)
CPLC = bytes.fromhex("9F7F2A") + bytes.fromhex("47905167470063510100") + bytes(32)


def resources(free_persistent: int, free_transient: int) -> bytes:
    body = (
        bytes.fromhex("810103")
        + b"\x82\x04"
        + free_persistent.to_bytes(4, "big")
        + b"\x83\x02"
        + free_transient.to_bytes(2, "big")
    )
    return bytes.fromhex("FF21") + bytes([len(body)]) + body


class ScriptedCard:
    """Answers by command header (CLA INS P1 P2); SELECT by AID."""

    def __init__(
        self,
        answers: dict[bytes, tuple[bytes, int]],
        applet: Callable[[bytes], tuple[bytes, int]] | None = None,
    ) -> None:
        self.answers = answers
        self.applet = applet
        self.sent: list[bytes] = []

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        self.sent.append(apdu)
        if apdu[:4] == bytes.fromhex("00A40400"):
            aid = apdu[5 : 5 + apdu[4]]
            if aid == bytes.fromhex("A000000151000000") and self.answers:
                return b"", OK
            if aid == c.AID_APPLET and self.applet is not None:
                return self.applet(apdu)
            return b"", NOT_FOUND
        if self.applet is not None and apdu[0] == 0x80 and apdu[2:4] in (b"\x01\x03",):
            return self.applet(apdu)
        return self.answers.get(apdu[:4], (b"", 0x6A88))


def applet_with(capabilities: int) -> Callable[[bytes], tuple[bytes, int]]:
    status = bytes.fromhex("800201008101018202") + capabilities.to_bytes(2, "big")
    platform = bytes.fromhex("03007FFF0E000E00")

    def answer(apdu: bytes) -> tuple[bytes, int]:
        if apdu[1] == 0xA4:
            return status, OK
        return platform, OK

    return answer


def manager(free_persistent: int, free_transient: int) -> dict[bytes, tuple[bytes, int]]:
    return {
        bytes.fromhex("80CA9F7F"): (CPLC, OK),
        bytes.fromhex("80CA0066"): (CARD_DATA, OK),
        bytes.fromhex("80CAFF21"): (resources(free_persistent, free_transient), OK),
    }


def test_decoders_read_cplc_card_data_and_free_memory() -> None:
    cplc = decode_cplc(CPLC)
    assert cplc is not None
    assert (cplc.ic_fabricator, cplc.ic_type, cplc.os_id) == ("4790", "5167", "4700")
    assert decode_cplc(CPLC[:20]) is None
    assert decode_card_data(CARD_DATA) == ("2.2.1", ("SCP03 i=10",))
    assert decode_card_resources(resources(98_124, 3_990)) == (3, 98_124, 3_990)


def test_card_manager_facts_are_read_and_missing_ones_listed() -> None:
    answers = manager(98_124, 3_990)
    del answers[bytes.fromhex("80CA0066")]
    info = read_card_manager(ScriptedCard(answers))
    assert info.isd_aid == bytes.fromhex("A000000151000000")
    assert (info.free_persistent, info.free_transient, info.applications) == (98_124, 3_990, 3)
    assert info.gp_version is None
    assert info.unanswered == ["GET DATA 0066 (card data)"]


def test_a_blank_card_with_room_is_undecided_until_the_applet_is_installed() -> None:
    report = check_platform(ScriptedCard(manager(NEEDED_PERSISTENT_BYTES, NEEDED_TRANSIENT_BYTES)))
    assert report.applet_status is None
    assert report.can_host is None
    verdicts = {check.name: check.verdict for check in report.checks}
    assert verdicts["free persistent memory"] is Verdict.OK
    assert verdicts["algorithms"] is Verdict.UNKNOWN


def test_too_little_memory_says_no_before_anything_is_installed() -> None:
    report = check_platform(ScriptedCard(manager(NEEDED_PERSISTENT_BYTES - 1, 4_000)))
    assert report.can_host is False
    failed = [check.name for check in report.checks if check.verdict is Verdict.FAIL]
    assert failed == ["free persistent memory"]


def test_an_installed_applet_without_secp256k1_cannot_host() -> None:
    caps = c.CAP_EXTENDED_LENGTH | c.CAP_ECDSA_PRECOMPUTED | c.CAP_TRNG
    report = check_platform(ScriptedCard({}, applet_with(caps)))
    assert report.applet_platform is not None
    assert report.applet_platform.javacard_version == "3.0"
    assert report.applet_platform.free_transient_reset == 0x0E00
    assert report.can_host is False
    verdicts = {check.name: check.verdict for check in report.checks}
    assert verdicts["CAP_SECP256K1"] is Verdict.FAIL
    assert verdicts["CAP_EC_PLAIN_XY"] is Verdict.WARN


def test_an_installed_applet_with_every_required_capability_can_host() -> None:
    caps = c.CAP_EXTENDED_LENGTH | c.CAP_ECDSA_PRECOMPUTED | c.CAP_SECP256K1
    report = check_platform(ScriptedCard(manager(50_000, 3_000), applet_with(caps)))
    assert report.can_host is True
    assert report.card_manager.gp_version == "2.2.1"


def test_the_command_says_can_not_host_in_one_line_exit_1_with_the_report(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`provider check-platform` on a card too small: the report for a person, then one
    `error:` line and exit 1; with --json the whole report under "ok": false."""
    from click_runner import separate_runner

    from sealcard.cli import provider_cmd
    from sealcard.cli.main import cli
    from sealcard.transport import pcsc

    class Connection(ScriptedCard):
        atr = bytes.fromhex("3B8F8001")

        def __enter__(self) -> Connection:
            return self

        def __exit__(self, *_exc: object) -> None:
            return None

    def open_card(_name: str, **_kwargs: object) -> Connection:
        return Connection(manager(NEEDED_PERSISTENT_BYTES - 1, 4_000))

    monkeypatch.setattr(provider_cmd, "pick_reader", lambda _reader: "Scripted Reader 00 00")
    monkeypatch.setattr(pcsc.PcscConnection, "open", open_card)
    text = separate_runner().invoke(cli, ["provider", "check-platform"])
    assert text.exit_code == 1
    assert "verdict: can NOT host the sealcard applet" in text.stdout
    assert text.stderr.splitlines() == [
        "error: the card in 'Scripted Reader 00 00' can NOT host the sealcard applet: failed "
        "free persistent memory (docs/real-cards.md explains each check)"
    ]
    as_json = separate_runner().invoke(cli, ["provider", "check-platform", "--json"])
    report = json.loads(as_json.stdout)
    assert as_json.exit_code == 1 and report["ok"] is False and report["error"] == "CannotHost"
    assert report["can_host"] is False and report["exit_code"] == 1
