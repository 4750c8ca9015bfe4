"""`sealcard provider check-platform` on simulated cards, run as a user runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from sealcard.card.session import SealcardSession
from sealcard.transport.pcsc import PcscConnection

pytestmark = pytest.mark.sim

SEALCARD = shutil.which("sealcard") or "sealcard"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SEALCARD, "provider", "check-platform", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _status(reader: str) -> tuple[int, bytes | None, int]:
    with PcscConnection.open(reader) as connection:
        session = SealcardSession(connection)
        status = session.refresh_status()
        return int(status.state), status.serial, int(status.capabilities)


def test_a_simulated_card_can_host_the_applet_and_is_left_as_it_was(sim_cards: Any) -> None:
    card = sim_cards[0]
    card.reset_blank()
    before = _status(card.reader)

    run = _run("--reader", card.reader, "--json")

    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["ok"] is True
    assert report["reader"] == card.reader
    assert report["can_host"] is True
    assert report["applet"]["javacard_version"] == "3.0"
    assert report["applet"]["state"] == "BLANK"
    assert {"CAP_SECP256K1", "CAP_ECDSA_PRECOMPUTED", "CAP_EC_PLAIN_XY"} <= set(
        report["applet"]["capabilities"]
    )
    # jCardSim has no GlobalPlatform card manager: said so, not an error.
    assert report["card_manager"]["aid"] is None
    assert report["card_manager"]["unanswered"] == ["SELECT card manager"]
    verdicts = {check["name"]: check["verdict"] for check in report["checks"]}
    assert verdicts["CAP_SECP256K1"] == "ok"
    assert verdicts["CAP_RSA_OAEP_SHA256"] == "ok"  # optional: absent on jCardSim, still ok
    assert verdicts["JavaCard version"] == "ok"
    assert _status(card.reader) == before  # read-only


def test_the_text_report_names_each_check_and_the_verdict(sim_cards: Any) -> None:
    run = _run("--reader", sim_cards[1].reader)
    assert run.returncode == 0, run.stderr
    assert "card manager                 not answering SELECT" in run.stdout
    assert "[  ok] CAP_SECP256K1" in run.stdout
    assert "no: native OAEP-SHA256" in run.stdout
    assert run.stdout.rstrip().endswith("verdict: can host the sealcard applet")


def test_an_unknown_reader_is_one_line_on_stderr(sim_cards: Any) -> None:
    run = _run("--reader", "No Such Reader 00 00")
    assert run.returncode == 3  # unavailable (docs/cli.md): the reader is not there
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "error: no reader matches 'No Such Reader 00 00'; the readers are 0: Sealcard Sim"
    )


def test_help_teaches_what_is_read(sim_cards: Any) -> None:
    run = _run("--help")
    assert run.returncode == 0
    assert "GET DATA" in run.stdout and "read-only" in run.stdout
