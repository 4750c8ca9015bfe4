"""Suite 1 over PC/SC (docs/assurance.md): random and structure-aware APDUs through pcscd to a
simulated card, blank and personalized. The bulk (over a million APDUs) runs in-JVM
(`ant assurance-fuzz`); this smaller run checks the same properties through the whole stack:
every SW is one docs/apdu.md lists, a refused command changes nothing the card reports
(state, serial, PIN status; a wrong PIN or PUK only lowers its counter), and no answer holds
the user key, PIN or PUK. CI sends a few hundred per state; SEALCARD_FUZZ_PCSC_APDUS=N sends N.
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest
from simcards import reset_blank
from test_no_private_key_leaves import PIN, PUK, SERIAL, issuer_key, personalized_card, session_on

from sealcard.card import constants as c
from sealcard.card.session import SealcardSession
from sealcard.parties.provider import ProviderCA
from sealcard.transport.errors import ApduError

pytestmark = pytest.mark.sim

APDUS = int(os.environ.get("SEALCARD_FUZZ_PCSC_APDUS", "400"))
REFUSALS = {
    0x6700, 0x6883, 0x6884, 0x6982, 0x6985, 0x6A80, 0x6A84, 0x6A86, 0x6A88, 0x6D00, 0x6E00,
    0x6A82, 0x6983, 0x6984, *range(0x63C0, 0x63C6),
}  # fmt: skip
KNOWN = [
    (0x00, 0xA4), (0x00, 0xC0), (0x80, 0x46), (0x80, 0x30), (0x80, 0x32), (0x80, 0x34),
    (0x80, 0x36), (0x80, 0x3E), (0x80, 0xCA), (0x80, 0x38), (0x80, 0x50), (0x00, 0x20),
    (0x00, 0x24), (0x00, 0x2C), (0x00, 0x2A), (0x00, 0x84), (0x00, 0x88), (0x80, 0x60),
]  # fmt: skip
PRESENTATION = {c.INS_VERIFY, c.INS_CHANGE_REFERENCE_DATA, c.INS_RESET_RETRY_COUNTER}


def encode(cla: int, ins: int, p1: int, p2: int, data: bytes, le: int | None) -> bytes:
    """Short ISO 7816-4 encoding when it fits (and the simulator's 260-byte buffer), else
    extended; SELECT data kept under 128 bytes (jCardSim reads its Lc signed)."""
    if cla == 0x00 and ins == 0xA4 and p1 == 0x04:
        data = data[:127]
    head = bytes([cla, ins, p1, p2])
    if len(data) < 255 and (le is None or le <= 256):
        body = (bytes([len(data)]) + data if data else b"") + (
            b"" if le is None else bytes([le & 0xFF])
        )
        return head + body
    body = (b"\x00" + len(data).to_bytes(2, "big") + data) if data else b"\x00"
    return head + body + (b"" if le is None else (le & 0xFFFF).to_bytes(2, "big"))


def next_apdu(rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        cla = rng.choice([0x00, 0x80, 0x90, 0x10, rng.randrange(256)])
        ins = rng.randrange(256)
        return encode(cla, ins, rng.randrange(256), rng.randrange(256),
                      rng.randbytes(rng.choice([0, 1, 5, 16, 40, 300])),
                      rng.choice([None, 256, 16]))  # fmt: skip
    cla, ins = rng.choice(KNOWN)
    if rng.random() < 0.2:
        cla |= 0x10
    p1 = rng.choice([0, 1, 2, 0x9E, rng.randrange(256)])
    p2 = rng.choice([0, 0x81, 0x9A, rng.randrange(256)])
    digits = bytes(rng.choice(b"0123456789") for _ in range(rng.randrange(14)))
    data = rng.choice([b"", rng.randbytes(rng.randrange(80)), digits])
    return encode(cla, ins, p1, p2, data, rng.choice([None, 256]))


def reported(session: SealcardSession) -> tuple[Any, ...]:
    try:
        status = session.refresh_status()
    except ApduError as exc:
        # a fuzzed chunk left a chain open: this GET DATA abandoned it with 6883 (docs/apdu.md)
        if exc.sw != c.SW_LAST_COMMAND_OF_CHAIN_EXPECTED:
            raise
        status = session.refresh_status()
    pins = session.pin_status() if status.state == c.State.PERSONALIZED else None
    return (status.state, status.serial, pins)


def fuzz(session: SealcardSession, seed: int, secrets: list[bytes]) -> list[str]:
    rng = random.Random(seed)
    connection = session.connection
    problems: list[str] = []
    before = reported(session)
    for _ in range(APDUS):
        apdu = next_apdu(rng)
        data, sw = connection.send_and_receive(apdu)
        success = sw == c.SW_OK or sw >> 8 == 0x61
        if not success and sw not in REFUSALS:
            problems.append(f"SW {sw:04X} for {apdu.hex()}")
        for secret in secrets:
            if secret in data:
                problems.append(f"a secret in the answer to {apdu.hex()}")
        if not success:
            after = reported(session)
            presentation = apdu[0] & 0xEF == 0 and apdu[1] in PRESENTATION
            if after != before and not (presentation and after[:2] == before[:2]):
                problems.append(f"refused {sw:04X} but changed {before} -> {after}: {apdu.hex()}")
        before = reported(session)
    return problems


def test_blank_card(sim_cards: list[Any], ca: ProviderCA) -> None:
    card = sim_cards[0]
    reset_blank(card)
    with session_on(card) as session:
        session.set_serial(SERIAL)
        session.put_issuer_key(issuer_key())
        problems = fuzz(session, 1, [])
    assert not problems, "\n".join(problems[:20])


def test_personalized_card(sim_cards: list[Any], ca: ProviderCA) -> None:
    card = sim_cards[0]
    reset_blank(card)
    with session_on(card) as session:
        user_key, _ = personalized_card(session, ca)
        problems = fuzz(session, 2, [user_key, PIN, PUK])
    assert not problems, "\n".join(problems[:20])
