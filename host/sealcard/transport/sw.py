"""ISO 7816-4 status words by name (the ones the sealcard applet uses; see docs/apdu.md)."""

from __future__ import annotations

from enum import IntEnum


class SW(IntEnum):
    """Status words, named as in docs/apdu.md without the `SW_` prefix."""

    OK = 0x9000
    BYTES_REMAINING = 0x6100
    WRONG_LENGTH = 0x6700
    LAST_COMMAND_OF_CHAIN_EXPECTED = 0x6883
    CHAINING_NOT_SUPPORTED = 0x6884
    PIN_TRIES_REMAINING = 0x63C0
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTH_METHOD_BLOCKED = 0x6983
    DATA_INVALID = 0x6984
    CONDITIONS_NOT_SATISFIED = 0x6985
    WRONG_DATA = 0x6A80
    FILE_NOT_FOUND = 0x6A82
    NOT_ENOUGH_MEMORY = 0x6A84
    INCORRECT_P1P2 = 0x6A86
    REFERENCED_DATA_NOT_FOUND = 0x6A88
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    UNKNOWN = 0x6F00


SW1_BYTES_REMAINING = 0x61
SW1_WRONG_LE = 0x6C
PIN_TRIES_MASK = 0xFFF0


def sw_name(sw: int) -> str:
    """A readable name for a status word: "SW_WRONG_DATA", "SW_BYTES_REMAINING(12)", "SW_6Bxx"."""
    try:
        return f"SW_{SW(sw).name}"
    except ValueError:
        pass
    sw1, sw2 = sw >> 8, sw & 0xFF
    if sw1 == SW1_BYTES_REMAINING:
        return f"SW_BYTES_REMAINING({sw2})"
    if sw & PIN_TRIES_MASK == SW.PIN_TRIES_REMAINING:
        return f"SW_PIN_TRIES_REMAINING({sw & 0x0F})"
    if sw1 == SW1_WRONG_LE:
        return f"SW_WRONG_LE({sw2})"
    return "SW_UNNAMED"
