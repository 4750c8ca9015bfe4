"""The simulated card answers malformed commands as a card does (docs/simulator.md): 6700 for
an Lc that does not match the data and for a command shorter than its header, where jCardSim
alone answered 6F00 or, for a 1-byte command, wedged the reader until a tear."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
from cli_failures import child_env, run_sealcard

from sealcard.card import constants as c
from sealcard.transport.pcsc import PcscConnection

if TYPE_CHECKING:
    from conftest import SimCards

pytestmark = pytest.mark.sim

GET_STATUS = bytes([c.CLA_PROPRIETARY, c.INS_GET_DATA, c.DO_STATUS >> 8, c.DO_STATUS & 0xFF, 0])
GET_DATA_HEADER = GET_STATUS[:4]
SELECT_APPLET = bytes([0x00, 0xA4, 0x04, 0x00, len(c.AID_APPLET)]) + c.AID_APPLET + b"\x00"

MALFORMED = {
    "Lc 5, 3 bytes follow": GET_DATA_HEADER + bytes([5, 1, 2, 3]),
    "Lc 2, 4 bytes follow": GET_DATA_HEADER + bytes([2, 1, 2, 3, 4]),
    "3 bytes": GET_DATA_HEADER[:3],
    "2 bytes": GET_DATA_HEADER[:2],
    "extended Lc 0005, 2 bytes follow": GET_DATA_HEADER + bytes([0, 0, 5, 1, 2]),
    "extended Lc 0002, 3 bytes follow": GET_DATA_HEADER + bytes([0, 0, 2, 1, 2, 3]),
    "6 bytes, Lc 00": GET_DATA_HEADER + bytes([0, 7]),
    "1 byte that is no vpcd code": bytes([0x80]),
}


@pytest.fixture
def connection(sim_cards: SimCards) -> PcscConnection:
    card = sim_cards[0]
    card.reset_blank()
    conn = PcscConnection.open(card.reader)
    assert conn.send_and_receive(SELECT_APPLET)[1] == c.SW_OK
    return conn


@pytest.mark.parametrize("apdu", MALFORMED.values(), ids=list(MALFORMED))
def test_a_malformed_length_gets_6700(connection: PcscConnection, apdu: bytes) -> None:
    with connection:
        assert connection.send_and_receive(apdu) == (b"", c.SW_WRONG_LENGTH)
        status, sw = connection.send_and_receive(GET_STATUS)
        assert sw == c.SW_OK and status  # still selected, still answering


def test_a_short_case_4_with_255_data_bytes_reaches_the_applet(
    connection: PcscConnection,
) -> None:
    """Lc=255 plus Le (261 bytes) overflows jCardSim's short buffer (6F00); a card takes it,
    and GET DATA refuses data with 6700."""
    with connection:
        data, sw = connection.send_and_receive(GET_DATA_HEADER + b"\xff" + bytes(255) + b"\x00")
        assert (data, sw) == (b"", c.SW_WRONG_LENGTH)


def test_a_one_byte_command_is_answered_and_the_reader_keeps_working(
    sim_cards: SimCards, connection: PcscConnection
) -> None:
    """00 is also vpcd's power-off code: the card answers it once nothing follows (3 s), and
    the reader is never wedged."""
    with connection:
        start = time.monotonic()
        assert connection.send_and_receive(b"\x00") == (b"", c.SW_WRONG_LENGTH)
        assert time.monotonic() - start < 30
        status, sw = connection.send_and_receive(GET_STATUS)
        assert sw == c.SW_OK and status  # not powered off: the applet is still selected
    listing = run_sealcard(["readers"], child_env())
    assert listing.code == 0 and sim_cards[0].reader in listing.stdout
