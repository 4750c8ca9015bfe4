"""Command APDUs and their short and extended encodings (ISO 7816-4, 5.1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

SHORT_MAX_DATA: Final = 255
"""Most data bytes a short APDU carries (Lc is one byte)."""
SHORT_MAX_LE: Final = 256
"""Most answer bytes a short APDU asks for (Le = 00)."""
EXTENDED_MAX_DATA: Final = 65535
EXTENDED_MAX_LE: Final = 65536
"""Most answer bytes an extended APDU asks for (Le = 00 00)."""
CHAINING_BIT: Final = 0x10
"""The ISO command-chaining bit of CLA: set on every chunk but the last."""
INS_GET_RESPONSE: Final = 0xC0
CLA_ISO: Final = 0x00


@dataclass(frozen=True)
class Apdu:
    """One command APDU. `le` is the most answer bytes wanted; 0 means no Le field."""

    cla: int
    ins: int
    p1: int = 0
    p2: int = 0
    data: bytes = b""
    le: int = 0

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise ValueError(f"APDU {name} must be one byte, got {value}")
        if len(self.data) > EXTENDED_MAX_DATA:
            raise ValueError(f"APDU data of {len(self.data)} bytes is over {EXTENDED_MAX_DATA}")
        if not 0 <= self.le <= EXTENDED_MAX_LE:
            raise ValueError(f"APDU Le must be 0..{EXTENDED_MAX_LE}, got {self.le}")

    @property
    def header(self) -> bytes:
        return bytes((self.cla, self.ins, self.p1, self.p2))

    def fits_short(self) -> bool:
        """Whether the short encoding can carry this APDU."""
        return len(self.data) <= SHORT_MAX_DATA and self.le <= SHORT_MAX_LE

    def encode_short(self) -> bytes:
        """Short encoding: CLA INS P1 P2 [Lc data] [Le], Le 256 written as 00."""
        if not self.fits_short():
            raise ValueError("APDU too long for a short encoding: chain it or go extended")
        out = bytearray(self.header)
        if self.data:
            out.append(len(self.data))
            out += self.data
        if self.le:
            out.append(self.le % SHORT_MAX_LE)
        return bytes(out)

    def encode_extended(self) -> bytes:
        """Extended encoding: CLA INS P1 P2 00 [Lc(2) data] [Le(2)], Le 65536 written as 00 00."""
        out = bytearray(self.header)
        if not self.data and not self.le:
            return bytes(out)
        out.append(0)
        if self.data:
            out += len(self.data).to_bytes(2, "big")
            out += self.data
        if self.le:
            out += (self.le % EXTENDED_MAX_LE).to_bytes(2, "big")
        return bytes(out)

    def encode(self, *, extended: bool = False) -> bytes:
        """The short encoding when it fits and `extended` is False, otherwise extended."""
        if extended and not self.fits_short():
            return self.encode_extended()
        return self.encode_short()
