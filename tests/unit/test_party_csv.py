"""The CSV inside party files (formats/party_csv.py): header, columns, counts, versions."""

from __future__ import annotations

import pytest

from sealcard.formats.party_csv import (
    COLUMNS,
    CsvReader,
    CsvWriter,
    FileHeader,
    FileKind,
    PartyFileContentError,
    PartyName,
    Role,
    UnknownVersionError,
)

BANK = PartyName(Role.ISSUER, "bank")
BUREAU = PartyName(Role.BUREAU, "print-house")


def header(count: int, kind: FileKind = FileKind.PERSONALIZATION) -> FileHeader:
    return FileHeader(kind, "B-1", count, BANK, (BUREAU,))


def write(head: FileHeader, rows: list[list[str]]) -> bytes:
    out = bytearray()
    writer = CsvWriter(out.extend, head)
    for row in rows:
        writer.row(row)
    writer.close()
    return bytes(out)


def pieces(data: bytes, size: int = 7) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


ROWS = [
    ["1", "00A1B2C3", "QUJD", "hsm", "post", "Zoë O'Brien, Jr.", '12 "The" Lane\nFlat 3, Ålesund'],
    ["2", "00A1B2C4", "REVG", "bureau", "", "=SUM(A1)", "x"],
]


def test_round_trip_with_quotes_commas_newlines_and_unicode() -> None:
    data = write(header(2), ROWS)
    reader = CsvReader(iter(pieces(data)))
    assert reader.header.kind is FileKind.PERSONALIZATION
    assert reader.header.sender == BANK and reader.header.recipients == (BUREAU,)
    assert list(reader.rows()) == ROWS


def test_layout_is_as_documented() -> None:
    lines = write(header(2), ROWS).split(b"\r\n")
    assert lines[0] == b"format,version,kind,batch,count,sender,recipients,file_id,created"
    assert lines[1].startswith(
        b"sealcard-party-file,1,personalization,B-1,2,issuer:bank,bureau:print-house,"
    )
    assert lines[2] == ",".join(COLUMNS[FileKind.PERSONALIZATION].columns).encode()


def test_count_is_enforced_both_ways() -> None:
    with pytest.raises(PartyFileContentError, match="announces 3 rows"):
        write(header(3), ROWS)
    data = write(header(2), ROWS)
    short = data.replace(b",2,issuer:bank", b",3,issuer:bank")
    with pytest.raises(PartyFileContentError, match="announces 3 rows, the file has 2"):
        list(CsvReader(iter([short])).rows())
    more = data.replace(b",2,issuer:bank", b",1,issuer:bank")
    with pytest.raises(PartyFileContentError, match="more rows"):
        list(CsvReader(iter([more])).rows())


def test_unknown_version_is_named() -> None:
    data = write(header(2), ROWS).replace(b"sealcard-party-file,1,", b"sealcard-party-file,2,")
    with pytest.raises(UnknownVersionError, match="unknown format version 2"):
        CsvReader(iter([data]))


def test_wrong_columns_and_widths() -> None:
    data = write(header(2), ROWS)
    with pytest.raises(PartyFileContentError, match="columns of a personalization file"):
        CsvReader(iter([data.replace(b"sealed_blob", b"blob")]))
    with pytest.raises(PartyFileContentError, match="has 7 fields"):
        write(header(1), [ROWS[0][:-1]])


def test_sender_role_must_fit_the_kind() -> None:
    bad = FileHeader(FileKind.DEVICE_INIT, "P", 0, BUREAU, (BANK,))
    data = write(bad, [])
    with pytest.raises(PartyFileContentError, match="cannot come from a bureau"):
        CsvReader(iter([data]))


def test_not_a_party_file() -> None:
    with pytest.raises(PartyFileContentError, match="not a sealcard party file"):
        CsvReader(iter([b"serial,personalized\r\n00A1,true\r\n"]))
