"""The CSV inside every sealed party file: a two-record header, column names, one row a card.

    format,version,kind,batch,count,sender,recipients,file_id,created
    sealcard-party-file,1,device-init,PACK-7,4,provider:acme,issuer:bank,9f0c...,2026-12-01T12:00:00Z
    serial,device_public_key,...                    <- the kind's columns, in this order
    00A1B2C3D4E5F607,MIIBIjAN...,...                 <- `count` rows

RFC 4180 (UTF-8, CRLF, quotes where a field needs them). The columns of each kind are in
`COLUMNS` and docs/files.md. Pure: the writer hands bytes to a sink, the reader takes an
iterator of byte pieces (the sealed file's content), so neither holds more than a row.
"""

from __future__ import annotations

import base64
import binascii
import csv
import datetime as dt
import enum
import io
import re
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

from sealcard.errors import SealcardError
from sealcard.formats.roles import Role as Role  # re-exported: the format names the roles

FORMAT_NAME: Final = "sealcard-party-file"
FORMAT_VERSION: Final = 1
HEADER_FIELDS: Final = (
    "format",
    "version",
    "kind",
    "batch",
    "count",
    "sender",
    "recipients",
    "file_id",
    "created",
)
MAX_ROWS: Final = 10_000_000
MAX_FIELD_BYTES: Final = 64 * 1024
SERIAL_BYTES: Final = range(4, 17)
_BATCH_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class PartyFileContentError(SealcardError):
    """The CSV of a party file is not what its header and kind promise."""


class PartyNameError(ValueError, SealcardError):
    """A party name or a pack/batch id that the format does not allow."""


class UnknownVersionError(PartyFileContentError):
    """A format version this code does not read."""


class FileKind(enum.StrEnum):
    """What a file holds; each kind has one sender role, its receivers' roles and columns."""

    DEVICE_INIT = "device-init"
    PERSONALIZATION = "personalization"
    RESULTS = "personalization-results"
    SHIPPING = "shipping-data"
    PIN_LETTERS = "pin-letters"
    MAIL_CONFIRMATION = "mail-confirmation"
    SHIP_CONFIRMATION = "ship-confirmation"


def a(role: Role | str) -> str:
    """The role with its article, for messages: "an issuer", "a bureau"."""
    word = role.value if isinstance(role, Role) else role
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


@dataclass(frozen=True)
class KindSpec:
    """Who sends a kind, who may receive it, and its columns."""

    sender: Role
    receivers: frozenset[Role]
    columns: tuple[str, ...]


COLUMNS: Final[dict[FileKind, KindSpec]] = {
    FileKind.DEVICE_INIT: KindSpec(
        Role.PROVIDER,
        frozenset({Role.ISSUER}),
        (
            "serial",
            "device_public_key",
            "issuer_auth_public_key",
            "device_key_certificate",
            "issuer_auth_key_certificate",
            "signed_device_key",
        ),
    ),
    FileKind.PERSONALIZATION: KindSpec(
        Role.ISSUER,
        frozenset({Role.BUREAU}),
        ("position", "serial", "sealed_blob", "pins", "mailer", "name", "address"),
    ),
    FileKind.RESULTS: KindSpec(
        Role.BUREAU,
        frozenset({Role.ISSUER}),
        ("serial", "outcome", "reason", "user_public_key", "at"),
    ),
    FileKind.SHIPPING: KindSpec(
        Role.BUREAU,
        frozenset({Role.ISSUER, Role.SHIPPER}),
        ("position", "serial", "name", "address"),
    ),
    FileKind.PIN_LETTERS: KindSpec(
        Role.ISSUER,
        frozenset({Role.MAILER}),
        ("serial", "letter"),
    ),
    FileKind.MAIL_CONFIRMATION: KindSpec(
        Role.MAILER,
        frozenset({Role.ISSUER}),
        ("serial", "outcome", "reason", "at"),
    ),
    FileKind.SHIP_CONFIRMATION: KindSpec(
        Role.SHIPPER,
        frozenset({Role.ISSUER}),
        ("serial", "tracking", "at"),
    ),
}
# The bureau's PIN letters (FIG. 2) travel in a pin-letters file too, signed by the bureau.
PIN_LETTER_SENDERS: Final = frozenset({Role.ISSUER, Role.BUREAU})


@dataclass(frozen=True)
class PartyName:
    """`role:name`, how a file's header names a party."""

    role: Role
    name: str

    def __str__(self) -> str:
        return f"{self.role.value}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> PartyName:
        role, sep, name = text.partition(":")
        try:
            parsed_role = Role(role)
        except ValueError:
            raise PartyFileContentError(f"{text!r} does not name a party (role:name)") from None
        if not sep or not _NAME_RE.match(name):
            raise PartyFileContentError(f"{text!r} does not name a party (role:name)")
        return cls(parsed_role, name)


def check_party_name(name: str) -> str:
    """A party name: lower-case letters, digits, '.', '_', '-', at most 64 characters."""
    if not _NAME_RE.match(name):
        raise PartyNameError(
            f"party name {name!r}: use lower-case letters, digits, '.', '_' or '-' (max 64)"
        )
    return name


def check_batch_id(batch: str) -> str:
    """A pack or batch id: letters, digits, '.', '_', '-', at most 64 characters."""
    if not _BATCH_RE.match(batch):
        raise PartyNameError(
            f"pack or batch id {batch!r}: use letters, digits, '.', '_' or '-' (max 64)"
        )
    return batch


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class FileHeader:
    """The first two records of every party file."""

    kind: FileKind
    batch: str
    count: int
    sender: PartyName
    recipients: tuple[PartyName, ...]
    file_id: str = field(default_factory=lambda: secrets.token_hex(16))
    created: str = field(default_factory=utc_now)
    version: int = FORMAT_VERSION

    def values(self) -> list[str]:
        return [
            FORMAT_NAME,
            str(self.version),
            self.kind.value,
            self.batch,
            str(self.count),
            str(self.sender),
            ";".join(str(r) for r in self.recipients),
            self.file_id,
            self.created,
        ]

    @property
    def spec(self) -> KindSpec:
        return COLUMNS[self.kind]

    def addressed_to(self, party: PartyName) -> bool:
        return party in self.recipients


def _check_header(values: list[str]) -> FileHeader:
    if len(values) != len(HEADER_FIELDS) or values[0] != FORMAT_NAME:
        raise PartyFileContentError("the content is not a sealcard party file (no header)")
    try:
        version = int(values[1])
    except ValueError:
        raise PartyFileContentError(f"format version {values[1]!r} is not a number") from None
    if version != FORMAT_VERSION:
        raise UnknownVersionError(
            f"unknown format version {version} (this sealcard reads version {FORMAT_VERSION})"
        )
    try:
        kind = FileKind(values[2])
    except ValueError:
        raise PartyFileContentError(f"unknown file kind {values[2]!r}") from None
    try:
        batch = check_batch_id(values[3])
        count = int(values[4])
    except ValueError as exc:
        raise PartyFileContentError(str(exc)) from None
    if not 0 <= count <= MAX_ROWS:
        raise PartyFileContentError(f"row count {count} out of range")
    sender = PartyName.parse(values[5])
    recipients = tuple(PartyName.parse(r) for r in values[6].split(";") if r)
    if not re.fullmatch(r"[0-9a-f]{32}", values[7]):
        raise PartyFileContentError("the file id is not 32 hex digits")
    spec = COLUMNS[kind]
    allowed = PIN_LETTER_SENDERS if kind is FileKind.PIN_LETTERS else {spec.sender}
    if sender.role not in allowed:
        raise PartyFileContentError(f"a {kind.value} file cannot come from {a(sender.role)}")
    if not recipients or any(r.role not in spec.receivers for r in recipients):
        raise PartyFileContentError(f"a {kind.value} file goes to {sorted(spec.receivers)} only")
    return FileHeader(kind, batch, count, sender, recipients, values[7], values[8], version)


class CsvWriter:
    """Writes header, column names and rows to `sink` (bytes), checking shape and count."""

    def __init__(self, sink: Callable[[bytes], None], header: FileHeader) -> None:
        self._sink = sink
        self.header = header
        self._columns = len(header.spec.columns)
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer, lineterminator="\r\n")
        self.rows = 0
        self._csv.writerow(HEADER_FIELDS)
        self._csv.writerow(header.values())
        self._csv.writerow(header.spec.columns)
        self._flush()

    def _flush(self) -> None:
        self._sink(self._buffer.getvalue().encode("utf-8"))
        self._buffer.seek(0)
        self._buffer.truncate()

    def row(self, values: Sequence[str]) -> None:
        if len(values) != self._columns:
            raise PartyFileContentError(
                f"a {self.header.kind.value} row has {self._columns} fields, got {len(values)}"
            )
        self.rows += 1
        if self.rows > self.header.count:
            raise PartyFileContentError(f"more rows than the header's count {self.header.count}")
        self._csv.writerow(values)
        if self._buffer.tell() >= 32 * 1024:
            self._flush()

    def close(self) -> None:
        self._flush()
        if self.rows != self.header.count:
            raise PartyFileContentError(
                f"the header announces {self.header.count} rows, {self.rows} were written"
            )


def _lines(pieces: Iterator[bytes]) -> Iterator[str]:
    """UTF-8 lines, each with its line end (a multi-byte character never holds 0x0A)."""
    rest = b""
    for piece in pieces:
        rest += piece
        start = 0
        while True:
            end = rest.find(b"\n", start)
            if end < 0:
                break
            yield _decode(rest[start : end + 1])
            start = end + 1
        rest = rest[start:]
        if len(rest) > MAX_FIELD_BYTES * 16:
            raise PartyFileContentError("a line of the file is too long")
    if rest:
        yield _decode(rest)


def _decode(line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise PartyFileContentError("the file is not UTF-8") from None


class CsvReader:
    """Reads a party file's CSV from byte pieces: `header` at once, then `rows()`."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._csv = csv.reader(_lines(pieces), strict=True)
        try:
            names = next(self._csv, None)
            values = next(self._csv, None)
            columns = next(self._csv, None)
        except csv.Error as exc:
            raise PartyFileContentError(f"the header is not valid CSV: {exc}") from None
        if names is None or values is None:
            raise PartyFileContentError("the content is not a sealcard party file (no header)")
        if tuple(names) != HEADER_FIELDS:
            if names and names[0] == "format" and values and values[0] == FORMAT_NAME:
                _check_header(values)  # an unknown version says so before the field names do
            raise PartyFileContentError("the content is not a sealcard party file (header)")
        self.header = _check_header(values)
        if columns is None or tuple(columns) != self.header.spec.columns:
            raise PartyFileContentError(
                f"the columns of a {self.header.kind.value} file are"
                f" {','.join(self.header.spec.columns)}"
            )
        self.rows_read = 0

    def rows(self) -> Iterator[list[str]]:
        """Every row (as many as the header's count, each with the kind's columns)."""
        width = len(self.header.spec.columns)
        try:
            for row in self._csv:
                self.rows_read += 1
                if self.rows_read > self.header.count:
                    raise PartyFileContentError(
                        f"more rows than the header's count {self.header.count}"
                    )
                if len(row) != width:
                    raise PartyFileContentError(
                        f"row {self.rows_read} has {len(row)} fields, expected {width}"
                    )
                yield row
        except csv.Error as exc:
            raise PartyFileContentError(
                f"row {self.rows_read + 1} is not valid CSV: {exc}"
            ) from None
        if self.rows_read != self.header.count:
            raise PartyFileContentError(
                f"the header announces {self.header.count} rows, the file has {self.rows_read}"
            )


# -- field codecs (every party decodes the same way) --------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise PartyFileContentError(f"{what} is not base64") from None


def serial_hex(serial: bytes) -> str:
    return serial.hex().upper()


def parse_serial(text: str) -> bytes:
    try:
        serial = bytes.fromhex(text)
    except ValueError:
        raise PartyFileContentError(f"card serial {text!r} is not hex") from None
    if len(serial) not in SERIAL_BYTES:
        raise PartyFileContentError(f"card serial {text} is not 4 to 16 bytes")
    return serial


def optional(text: str) -> str | None:
    return text or None
