"""The simulator itself: simulated cards behave like cards in real PC/SC readers.

Raw APDUs through pcscd (no session class), so a failure here points at the simulator, not at
the host library: readers with cards, SELECT by AID, reset to blank, tear, independence and
randomness of cards, and the round-trip time of a small APDU (the 40 ms delayed-ACK trap).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from sealcard import sim
from sealcard.card import constants as c
from sealcard.transport import pcsc
from sealcard.transport.apdu import Apdu
from sealcard.transport.errors import TransportError
from sealcard.transport.pcsc import PcscConnection
from sealcard.transport.protocol import INS_SELECT, P1_SELECT_BY_NAME

if TYPE_CHECKING:
    from conftest import SimCardHandle, SimCards

pytestmark = pytest.mark.sim

SHORT_LE = 0x100
UNKNOWN_AID = bytes.fromhex("F0000000000000FF")
TEST_SERIAL = bytes.fromhex("5EA1CA4D00000001")
ROUND_TRIPS = 200
MAX_MEDIAN_ROUND_TRIP_MS = 5.0
"""Far below the ~40 ms that Nagle plus delayed ACK would add to every APDU."""
ATR_TS_DIRECT = 0x3B


def _send(conn: PcscConnection, apdu: Apdu) -> tuple[bytes, int]:
    return conn.send_and_receive(apdu.encode())


def _select(conn: PcscConnection, aid: bytes = c.AID_APPLET) -> tuple[bytes, int]:
    return _send(conn, Apdu(c.CLA_ISO7816, INS_SELECT, P1_SELECT_BY_NAME, 0, aid, le=SHORT_LE))


def _get_data(conn: PcscConnection, obj: c.DataObject) -> tuple[bytes, int]:
    return _send(conn, Apdu(c.CLA_PROPRIETARY, c.INS_GET_DATA, obj >> 8, obj & 0xFF, le=SHORT_LE))


def _set_serial(conn: PcscConnection, serial: bytes) -> tuple[bytes, int]:
    return _send(conn, Apdu(c.CLA_PROPRIETARY, c.INS_SET_SERIAL, c.SERIAL_GIVEN, 0, serial))


def _random_serial(conn: PcscConnection) -> tuple[bytes, int]:
    return _send(conn, Apdu(c.CLA_PROPRIETARY, c.INS_SET_SERIAL, c.SERIAL_RANDOM, 0, le=SHORT_LE))


def _tlv_value(data: bytes, tag: int) -> bytes | None:
    """The value of a one-byte-tag, one-byte-length TLV in a flat TLV list."""
    i = 0
    while i + 2 <= len(data):
        t, length = data[i], data[i + 1]
        if t == tag:
            return data[i + 2 : i + 2 + length]
        i += 2 + length
    return None


def _blank_selected(card: SimCardHandle) -> PcscConnection:
    card.reset_blank()
    conn = PcscConnection.open(card.reader)
    _, sw = _select(conn)
    assert sw == c.SW_OK
    return conn


def test_every_card_sits_in_its_own_reader(sim_cards: SimCards) -> None:
    attached = pcsc.list_readers()
    for card in sim_cards:
        assert card.reader == sim.reader_name(card.index)
        assert card.reader in attached
        assert pcsc.reader_has_card(card.reader)
        with PcscConnection.open(card.reader) as conn:
            assert conn.atr[0] == ATR_TS_DIRECT
    status = sim.status(sim_cards.run_dir)
    assert status.running
    assert [x.connected for x in status.cards[: len(sim_cards)]] == [True] * len(sim_cards)


def test_select_by_aid_finds_a_blank_applet(sim_cards: SimCards) -> None:
    card = sim_cards[0]
    card.reset_blank()
    with PcscConnection.open(card.reader) as conn:
        # nothing selected yet, so the card itself answers a SELECT of an AID it lacks
        # (with an applet selected, JavaCard hands such a SELECT to that applet)
        assert _select(conn, UNKNOWN_AID)[1] == c.SW_FILE_NOT_FOUND
        answer, sw = _select(conn)
        assert sw == c.SW_OK
        assert _tlv_value(answer, c.TAG_STATE) == bytes([c.STATE_BLANK])


def test_reset_blank_forgets_everything_and_deselects(sim_cards: SimCards) -> None:
    card = sim_cards[1]
    with _blank_selected(card) as conn:
        assert _set_serial(conn, TEST_SERIAL)[1] == c.SW_OK
        assert _get_data(conn, c.DO_SERIAL) == (TEST_SERIAL, c.SW_OK)

        sim_cards.reset_blank(card.reader)

        # same connection: the new card has no applet selected ...
        assert _get_data(conn, c.DO_SERIAL)[1] != c.SW_OK
        answer, sw = _select(conn)
        assert sw == c.SW_OK
        assert _tlv_value(answer, c.TAG_STATE) == bytes([c.STATE_BLANK])
        # ... and nothing of the old one
        assert _get_data(conn, c.DO_SERIAL)[1] == c.SW_REFERENCED_DATA_NOT_FOUND


def test_tear_gives_a_reset_card_that_kept_its_eeprom(sim_cards: SimCards) -> None:
    card = sim_cards[2]
    tears_before = sim.status(sim_cards.run_dir).cards[card.index].tears or 0
    old = _blank_selected(card)
    try:
        assert _set_serial(old, TEST_SERIAL)[1] == c.SW_OK
        sim_cards.tear(card.reader)
        with pytest.raises(TransportError):
            _get_data(old, c.DO_SERIAL)
    finally:
        old.close()
    with PcscConnection.open(card.reader) as conn:
        assert _get_data(conn, c.DO_SERIAL)[1] != c.SW_OK  # power lost: no applet selected
        assert _select(conn)[1] == c.SW_OK
        assert _get_data(conn, c.DO_SERIAL) == (TEST_SERIAL, c.SW_OK)  # EEPROM survived
    assert sim.status(sim_cards.run_dir).cards[card.index].tears == tears_before + 1


def test_two_cards_are_independent(sim_cards: SimCards) -> None:
    first, second = sim_cards[0], sim_cards[3]
    with _blank_selected(first) as a, _blank_selected(second) as b:
        assert _set_serial(a, TEST_SERIAL)[1] == c.SW_OK
        assert _get_data(b, c.DO_SERIAL)[1] == c.SW_REFERENCED_DATA_NOT_FOUND
        assert _get_data(a, c.DO_SERIAL) == (TEST_SERIAL, c.SW_OK)


def test_cards_draw_different_random_numbers_and_keys(sim_cards: SimCards) -> None:
    """jCardSim's RandomData and key generator are seeded per card (the randomness trap)."""
    serials: list[bytes] = []
    points: list[bytes] = []
    for card in sim_cards:
        with _blank_selected(card) as conn:
            serial, sw = _random_serial(conn)
            assert sw == c.SW_OK
            assert len(serial) == c.RANDOM_SERIAL_LENGTH
            serials.append(serial)
            point, sw = _send(
                conn,
                Apdu(c.CLA_PROPRIETARY, c.INS_GENERATE_KEY_PAIR, c.KEY_ISSUER_AUTH, 0, le=SHORT_LE),
            )
            assert sw == c.SW_OK
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)  # on the curve
            points.append(point)
    assert len(set(serials)) == len(serials)
    assert len(set(points)) == len(points)


def test_small_apdu_round_trip_is_fast(
    sim_cards: SimCards, record_property: Callable[[str, object], None]
) -> None:
    card = sim_cards[0]
    with PcscConnection.open(card.reader) as conn:
        assert _select(conn)[1] == c.SW_OK
        times: list[float] = []
        for _ in range(ROUND_TRIPS):
            began = time.perf_counter()
            _, sw = _get_data(conn, c.DO_STATUS)
            times.append(time.perf_counter() - began)
            assert sw == c.SW_OK
    median_ms = statistics.median(times) * 1000.0
    record_property("apdu_round_trip_median_ms", round(median_ms, 3))
    assert median_ms < MAX_MEDIAN_ROUND_TRIP_MS
