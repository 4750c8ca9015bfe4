"""The failure rows that need a card (tests/support/cli_failures.py, needs="sim"), run through
the installed `sealcard` executable against a simulated card prepared in the row's state;
and what a person sees on such cards when nothing fails (user key gone, reader by number,
the --debug trace)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from cli_failures import CASES, SIM_PLACEHOLDERS, Case, check, child_env, run_case, run_sealcard
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from personal import (
    NEW_PIN,
    PIN,
    PUK,
    WRONG_PUK,
    Issued,
    issue,
    personalized,
    session_on,
    signer_of,
)
from simcards import reset_blank

from sealcard.card import constants as c
from sealcard.card.errors import BlockedError, InvalidPinError
from sealcard.crypto.sealed_blob import seal
from sealcard.parties.provider import ProviderCA

pytestmark = pytest.mark.sim

SIM_CASES = [case for case in CASES if case.needs == "sim"]
STATES = ("blank", "initialized", "foreign", "personalized", "wiped", "terminated")


@pytest.fixture(scope="module")
def files(
    tmp_path_factory: pytest.TempPathFactory, issuer: ec.EllipticCurvePrivateKey
) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("cli-sim")
    (tmp / "a-file").write_text("not a folder\n")
    (tmp / "issuer.pub.pem").write_bytes(
        issuer.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    return {
        "tmp": str(tmp),
        "file": str(tmp / "a-file"),
        "issuer_key": str(tmp / "issuer.pub.pem"),
        "hash": "cd" * 32,
    }


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> ProviderCA:
    return ProviderCA.create(tmp_path_factory.mktemp("other-ca"), b"another provider's CA")


def _wipe_user_key(issued: Issued) -> None:
    """Block the PUK (the card wipes the user key), then the issuer resets the PIN to NEW_PIN:
    both counters are full again and only DO_PIN_STATUS's fourth byte tells."""
    with session_on(issued.card) as session:
        for _ in range(c.PUK_TRY_LIMIT):
            with contextlib.suppress(InvalidPinError, BlockedError):
                session.unblock_pin(WRONG_PUK, NEW_PIN)
        session.issuer_reset_pin(NEW_PIN, signer_of(issued.device_auth))


def prepare(
    state: str, card: Any, ca: ProviderCA, other_ca: ProviderCA, issuer: ec.EllipticCurvePrivateKey
) -> Issued | None:
    """Put `card` in `state` (see STATES); the Issued keys when it went through step A."""
    if state == "blank":
        reset_blank(card)
        return None
    if state == "foreign":
        return issue(card, other_ca, issuer)
    issued = issue(card, ca, issuer)
    if state == "initialized":
        return issued
    personalized(issued)
    if state == "wiped":
        _wipe_user_key(issued)
    elif state == "terminated":
        with session_on(card) as session:
            session.issuer_terminate(signer_of(issued.device_auth))
    return issued


def _values(
    files: dict[str, str], card: Any, ca: ProviderCA, issued: Issued | None
) -> dict[str, str]:
    tmp = Path(files["tmp"])
    if issued is not None:
        # Sealed (validly) for another serial: the bureau code refuses it before the card sees it.
        other = seal(
            issued.payload(), bytes(8), issued.init.device_public_key, signer_of(issued.issuer)
        )
        (tmp / "other.blob").write_bytes(other)
        # This card's blob with one bit of the issuer signature flipped: the card refuses it.
        blob = bytearray(issued.blob())
        blob[-3] ^= 0x01
        (tmp / "bad-signature.blob").write_bytes(bytes(blob))
    return {
        **files,
        "reader": card.reader,
        "root": str(Path(ca.directory or "") / "root.pem"),
        "ca_dir": str(ca.directory),
        "blob_other": str(tmp / "other.blob"),
        "blob_bad_signature": str(tmp / "bad-signature.blob"),
    }


@pytest.mark.parametrize("case", SIM_CASES, ids=[case.id for case in SIM_CASES])
def test_failure_row_on_a_card(
    case: Case,
    sim_cards: list[Any],
    ca: ProviderCA,
    other_ca: ProviderCA,
    issuer: ec.EllipticCurvePrivateKey,
    files: dict[str, str],
) -> None:
    assert case.card in STATES
    card = sim_cards[-1]
    env = child_env()
    for as_json in (False, True):  # a fresh card for each: a failed PIN costs a try
        issued = prepare(case.card, card, ca, other_ca, issuer)
        values = _values(files, card, ca, issued)
        assert set(values) | {"fd", "fd2", "run"} == set(SIM_PLACEHOLDERS)
        check(case, run_case(case, values, env, as_json=as_json), as_json=as_json)


def test_pin_status_says_the_user_key_is_gone(
    sim_cards: list[Any], ca: ProviderCA, other_ca: ProviderCA, issuer: ec.EllipticCurvePrivateKey
) -> None:
    """After a PUK block and an issuer PIN reset the counters look healthy: the status says
    the key is gone (it used to read like a working card)."""
    card = sim_cards[-1]
    prepare("wiped", card, ca, other_ca, issuer)
    env = child_env()
    text = run_sealcard(["card", "pin", "status", "-r", card.reader], env)
    assert text.code == 0, text.stderr
    assert f"PIN tries left: {c.PIN_TRY_LIMIT}; PUK tries left: {c.PUK_TRY_LIMIT}" in text.stdout
    assert "user key: GONE" in text.stdout and "can no longer sign" in text.stdout
    as_json = run_sealcard(["card", "pin", "status", "-r", card.reader, "--json"], env)
    document = json.loads(as_json.stdout)
    assert document["user_key_present"] is False and document["pin_blocked"] is False
    personalized(issue(card, ca, issuer))
    healthy = json.loads(
        run_sealcard(["card", "pin", "status", "-r", card.reader, "--json"], env).stdout
    )
    assert healthy["user_key_present"] is True


def test_reader_by_number_or_part_of_its_name(
    sim_cards: list[Any], ca: ProviderCA, issuer: ec.EllipticCurvePrivateKey
) -> None:
    """-r takes what `sealcard readers` shows: the number, or a unique part of the name."""
    card = sim_cards[-1]
    reset_blank(card)
    env = child_env()
    listing = json.loads(run_sealcard(["readers", "--json"], env).stdout)["readers"]
    number = next(r["index"] for r in listing if r["reader"] == card.reader)
    for wanted in (str(number), card.reader.lower(), card.reader[-8:]):
        run = run_sealcard(["card", "info", "-r", wanted, "--json"], env)
        assert run.code == 0, run.stderr
        assert json.loads(run.stdout)["reader"] == card.reader


def test_debug_trace_on_a_card(
    sim_cards: list[Any], ca: ProviderCA, issuer: ec.EllipticCurvePrivateKey
) -> None:
    """-v: a warning, then headers and status words; the PIN never, not even its length."""
    card = sim_cards[-1]
    personalized(issue(card, ca, issuer))
    env = child_env()
    run = run_sealcard(
        ["-v", "card", "pin", "verify", "-r", card.reader, "--pin-fd", "{fd}"], env, PIN + b"\n"
    )
    assert run.code == 0, run.stderr
    lines = run.stderr.splitlines()
    assert lines[0].startswith("warning: debug log on")
    assert "debug: sealcard.apdu: > 00 A4 04 00 Lc=10 Le=256" in lines
    assert f"debug: sealcard.apdu: > 00 20 00 {c.PIN_REF_USER:02X} Lc=**" in lines
    assert "debug: sealcard.apdu: < 9000 (0 bytes)" in lines
    assert PIN.decode() not in run.stderr and PIN.hex() not in run.stderr.lower()
    assert PUK.decode() not in run.stderr
