"""Read-only facts from a card's GlobalPlatform card manager (Issuer Security Domain).

What any GlobalPlatform card answers without authentication, used to judge whether it can
host the applet before (or after) the CAP is loaded:

* GET DATA `9F7F`: the CPLC (Card Production Life Cycle, GlobalPlatform Card Specification
  2.x, section H.6): IC fabricator, IC type, operating system id, release date and level.
* GET DATA `0066`: Card Recognition Data (GPCS 2.2, section H.2): the GlobalPlatform version
  (OID 1.2.840.114283.2.v) and the secure channel protocols (OID 1.2.840.114283.4.scp.i).
* GET DATA `FF21`: Extended Card Resources Information (GPCS Amendment C / ETSI TS 102 226):
  `81` number of installed applications, `82` free non-volatile memory, `83` free volatile
  memory, in bytes. JCOP cards answer it; GlobalPlatformPro's `gp --info` shows it.

Every item is optional: a card that does not answer one (or a simulated card without a card
manager) gives None for it, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from sealcard.transport.connection import Connection
from sealcard.transport.errors import ApduError
from sealcard.transport.protocol import SmartCardProtocol

# Issuer Security Domain AIDs, most common first: GlobalPlatform's, then Visa OpenPlatform's
# (older JCOP and many others), then GemaltoXpress's.
ISD_AIDS: Final = (
    bytes.fromhex("A000000151000000"),
    bytes.fromhex("A000000003000000"),
    bytes.fromhex("A000000018434D00"),
)
CLA_GP: Final = 0x80
INS_GET_DATA: Final = 0xCA
TAG_CPLC: Final = 0x9F7F
TAG_CARD_DATA: Final = 0x0066
TAG_CARD_RESOURCES: Final = 0xFF21
CPLC_LENGTH: Final = 42
GP_OID_PREFIX: Final = bytes.fromhex("2A864886FC6B")  # 1.2.840.114283
GP_VERSION_ARC: Final = 2
GP_SCP_ARC: Final = 4


@dataclass(frozen=True)
class Cplc:
    """The CPLC fields that name the chip and its operating system (hex strings)."""

    ic_fabricator: str
    ic_type: str
    os_id: str
    os_release_date: str
    os_release_level: str


@dataclass(frozen=True)
class CardManagerInfo:
    """What the card manager told; None where it did not answer."""

    isd_aid: bytes | None = None
    cplc: Cplc | None = None
    gp_version: str | None = None
    secure_channels: tuple[str, ...] = ()
    applications: int | None = None
    free_persistent: int | None = None
    free_transient: int | None = None
    unanswered: list[str] = field(default_factory=list)


def read_card_manager(connection: Connection) -> CardManagerInfo:
    """SELECT the card manager and read CPLC, card data and free memory (nothing is written)."""
    protocol = SmartCardProtocol(connection)
    isd = _select_isd(protocol)
    if isd is None:
        return CardManagerInfo(unanswered=["SELECT card manager"])
    unanswered: list[str] = []
    cplc_raw = _get_data(protocol, TAG_CPLC, unanswered, "GET DATA 9F7F (CPLC)")
    card_data = _get_data(protocol, TAG_CARD_DATA, unanswered, "GET DATA 0066 (card data)")
    resources = _get_data(protocol, TAG_CARD_RESOURCES, unanswered, "GET DATA FF21 (memory)")
    gp_version, channels = decode_card_data(card_data) if card_data else (None, ())
    applications, free_persistent, free_transient = (
        decode_card_resources(resources) if resources else (None, None, None)
    )
    return CardManagerInfo(
        isd_aid=isd,
        cplc=decode_cplc(cplc_raw) if cplc_raw else None,
        gp_version=gp_version,
        secure_channels=channels,
        applications=applications,
        free_persistent=free_persistent,
        free_transient=free_transient,
        unanswered=unanswered,
    )


def _select_isd(protocol: SmartCardProtocol) -> bytes | None:
    for aid in ISD_AIDS:
        try:
            protocol.select(aid)
        except ApduError:
            continue
        return aid
    return None


def _get_data(protocol: SmartCardProtocol, tag: int, unanswered: list[str], what: str) -> bytes:
    try:
        return protocol.send(CLA_GP, INS_GET_DATA, tag >> 8, tag & 0xFF, le=256)
    except ApduError:
        unanswered.append(what)
        return b""


def parse_ber(data: bytes) -> list[tuple[int, bytes]]:
    """(tag, value) of each BER-TLV at the top level of `data` (tags of 1-2 bytes)."""
    items: list[tuple[int, bytes]] = []
    at = 0
    while at < len(data):
        tag = data[at]
        at += 1
        if tag & 0x1F == 0x1F and at < len(data):
            tag = (tag << 8) | data[at]
            at += 1
        if at >= len(data):
            break
        length = data[at]
        at += 1
        if length & 0x80:
            count = length & 0x7F
            length = int.from_bytes(data[at : at + count], "big")
            at += count
        items.append((tag, data[at : at + length]))
        at += length
    return items


def _unwrap(data: bytes, tag: int) -> bytes:
    """The value of `tag` when `data` is that one TLV, else `data` as it is."""
    items = parse_ber(data)
    if len(items) == 1 and items[0][0] == tag:
        return items[0][1]
    return data


def decode_cplc(data: bytes) -> Cplc | None:
    """The CPLC (with or without its 9F7F header); None when it is too short."""
    body = _unwrap(data, TAG_CPLC)
    if len(body) < CPLC_LENGTH:
        return None
    return Cplc(
        ic_fabricator=body[0:2].hex().upper(),
        ic_type=body[2:4].hex().upper(),
        os_id=body[4:6].hex().upper(),
        os_release_date=body[6:8].hex().upper(),
        os_release_level=body[8:10].hex().upper(),
    )


def _oid_arcs(encoded: bytes) -> list[int]:
    """Arcs after the GlobalPlatform prefix of a DER OID value (base-128 groups)."""
    if not encoded.startswith(GP_OID_PREFIX):
        return []
    arcs: list[int] = []
    value = 0
    for byte in encoded[len(GP_OID_PREFIX) :]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    return arcs


def decode_card_data(data: bytes) -> tuple[str | None, tuple[str, ...]]:
    """GlobalPlatform version ("2.2.1") and secure channels ("SCP03 i=70") of tag 66."""
    body = _unwrap(data, TAG_CARD_DATA)
    inner = _unwrap(body, 0x73)
    version: str | None = None
    channels: list[str] = []
    for tag, value in parse_ber(inner):
        oid = dict(parse_ber(value)).get(0x06, b"")
        arcs = _oid_arcs(oid)
        if tag == 0x60 and len(arcs) > 1 and arcs[0] == GP_VERSION_ARC:
            version = ".".join(str(arc) for arc in arcs[1:])
        elif tag == 0x64 and len(arcs) >= 2 and arcs[0] == GP_SCP_ARC:
            channels.append(f"SCP{arcs[1]:02d}" + (f" i={arcs[2]:02X}" if len(arcs) > 2 else ""))
    return version, tuple(channels)


def decode_card_resources(data: bytes) -> tuple[int | None, int | None, int | None]:
    """(installed applications, free non-volatile bytes, free volatile bytes) of tag FF21."""
    fields = dict(parse_ber(_unwrap(data, TAG_CARD_RESOURCES)))

    def number(tag: int) -> int | None:
        value = fields.get(tag)
        return int.from_bytes(value, "big") if value else None

    return number(0x81), number(0x82), number(0x83)
