"""Transport layer with a scripted fake connection: encodings, chaining, 61xx, SW names."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from sealcard.card.constants import (
    SW_CONDITIONS_NOT_SATISFIED,
    SW_LAST_COMMAND_OF_CHAIN_EXPECTED,
    SW_OK,
    SW_WRONG_DATA,
)
from sealcard.transport.apdu import (
    CHAINING_BIT,
    INS_GET_RESPONSE,
    SHORT_MAX_DATA,
    Apdu,
)
from sealcard.transport.connection import CountingConnection
from sealcard.transport.errors import ApduError
from sealcard.transport.protocol import SmartCardProtocol
from sealcard.transport.sw import SW1_BYTES_REMAINING, sw_name

CLA = 0x80
INS = 0x34


class ScriptedConnection:
    """Checks each APDU against a script of (expected apdu, answer data, sw)."""

    def __init__(self, script: Sequence[tuple[bytes, bytes, int]]) -> None:
        self.script = list(script)
        self.sent: list[bytes] = []

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        self.sent.append(apdu)
        assert self.script, f"unexpected APDU {apdu.hex()}"
        expected, data, sw = self.script.pop(0)
        assert apdu == expected, f"sent {apdu.hex()}, script expected {expected.hex()}"
        return data, sw

    def done(self) -> bool:
        return not self.script


def remaining(count: int) -> int:
    return (SW1_BYTES_REMAINING << 8) | (count & 0xFF)


def test_short_encodings_cover_the_four_cases() -> None:
    assert Apdu(CLA, INS, 1, 2).encode() == bytes([CLA, INS, 1, 2])
    assert Apdu(CLA, INS, 1, 2, le=256).encode() == bytes([CLA, INS, 1, 2, 0])
    assert Apdu(CLA, INS, 1, 2, b"\xaa\xbb").encode() == bytes([CLA, INS, 1, 2, 2, 0xAA, 0xBB])
    assert Apdu(CLA, INS, 1, 2, b"\xaa", le=16).encode() == bytes([CLA, INS, 1, 2, 1, 0xAA, 16])


def test_extended_encoding_has_three_byte_lc_and_two_byte_le() -> None:
    data = bytes(range(256)) * 2
    encoded = Apdu(CLA, INS, 1, 0, data, le=65536).encode(extended=True)
    assert encoded[:7] == bytes([CLA, INS, 1, 0, 0, 0x02, 0x00])
    assert encoded[7:-2] == data
    assert encoded[-2:] == b"\x00\x00"
    assert Apdu(CLA, INS, le=1000).encode_extended() == bytes([CLA, INS, 0, 0, 0, 0x03, 0xE8])


def test_extended_flag_keeps_short_apdus_short() -> None:
    assert Apdu(CLA, INS, data=b"\x01", le=256).encode(extended=True) == bytes(
        [CLA, INS, 0, 0, 1, 1, 0]
    )


def test_short_encoding_refuses_long_data() -> None:
    with pytest.raises(ValueError, match="short"):
        Apdu(CLA, INS, data=bytes(SHORT_MAX_DATA + 1)).encode_short()


def test_apdu_refuses_out_of_range_header() -> None:
    with pytest.raises(ValueError, match="one byte"):
        Apdu(0x100, INS)


def test_command_chaining_sets_the_bit_on_all_but_the_last_chunk() -> None:
    data = bytes(i & 0xFF for i in range(600))
    script = [
        (bytes([CLA | CHAINING_BIT, INS, 1, 0, 255]) + data[:255], b"", SW_OK),
        (bytes([CLA | CHAINING_BIT, INS, 1, 0, 255]) + data[255:510], b"", SW_OK),
        (bytes([CLA, INS, 1, 0, 90]) + data[510:], b"", SW_OK),
    ]
    conn = ScriptedConnection(script)
    assert SmartCardProtocol(conn).send(CLA, INS, 1, 0, data) == b""
    assert conn.done()


def test_chaining_stops_at_the_first_failing_chunk() -> None:
    data = bytes(600)
    script = [
        (
            bytes([CLA | CHAINING_BIT, INS, 1, 0, 255]) + data[:255],
            b"",
            SW_LAST_COMMAND_OF_CHAIN_EXPECTED,
        ),
    ]
    conn = ScriptedConnection(script)
    with pytest.raises(ApduError) as err:
        SmartCardProtocol(conn).send(CLA, INS, 1, 0, data)
    assert err.value.sw == SW_LAST_COMMAND_OF_CHAIN_EXPECTED
    assert conn.done()


def test_extended_mode_sends_one_apdu() -> None:
    data = bytes(600)
    apdu = bytes([CLA, INS, 1, 0, 0, 0x02, 0x58]) + data
    conn = ScriptedConnection([(apdu, b"", SW_OK)])
    SmartCardProtocol(conn, extended=True).send(CLA, INS, 1, 0, data)
    assert conn.done()


def test_response_chaining_collects_every_part() -> None:
    part1, part2, part3 = bytes([1]) * 256, bytes([2]) * 256, bytes([3]) * 40
    get_response = bytes([0x00, INS_GET_RESPONSE, 0, 0])
    script = [
        (bytes([CLA, 0xCA, 1, 0x20, 0]), part1, remaining(0)),
        (get_response + b"\x00", part2, remaining(40)),
        (get_response + bytes([40]), part3, SW_OK),
    ]
    conn = ScriptedConnection(script)
    answer = SmartCardProtocol(conn).send(CLA, 0xCA, 1, 0x20, le=65536)
    assert answer == part1 + part2 + part3
    assert conn.done()


def test_error_after_get_response_is_raised_with_its_name() -> None:
    script = [
        (bytes([CLA, 0xCA, 0, 0, 0]), b"\x01" * 256, remaining(4)),
        (bytes([0, INS_GET_RESPONSE, 0, 0, 4]), b"", SW_CONDITIONS_NOT_SATISFIED),
    ]
    with pytest.raises(ApduError, match="SW_CONDITIONS_NOT_SATISFIED"):
        SmartCardProtocol(ScriptedConnection(script)).send(CLA, 0xCA, le=256)


def test_apdu_error_message_names_the_status_word() -> None:
    err = ApduError(SW_CONDITIONS_NOT_SATISFIED)
    assert str(err) == "SW_CONDITIONS_NOT_SATISFIED (6985)"
    assert sw_name(SW_WRONG_DATA) == "SW_WRONG_DATA"
    assert sw_name(remaining(5)) == "SW_BYTES_REMAINING(5)"
    assert "unnamed" in sw_name(0x6B12).lower()


def test_counting_connection_counts_apdus_and_bytes() -> None:
    inner = ScriptedConnection([(bytes([CLA, INS, 0, 0]), b"\x01\x02\x03", SW_OK)])
    counting = CountingConnection(inner)
    SmartCardProtocol(counting).send(CLA, INS)
    assert counting.count.apdus == 1
    assert counting.count.bytes_sent == 4
    assert counting.count.bytes_received == 3 + 2
    done = counting.reset_count()
    assert done.total_bytes == 9
    assert counting.count.apdus == 0
