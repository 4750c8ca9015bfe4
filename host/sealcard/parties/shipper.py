"""The shipping system: turn the bureau's shipping data into a shipping manifest (PDF, one line
a parcel: tracking number, serial, name, address) and write the ship confirmation for the
issuer (serial and tracking number of each card).

The tracking number is derived from batch and serial (`SC` and 12 hex digits of a SHA-256),
so running the same batch again gives the same numbers. As with every file taken in, nothing
is put in place before the shipping data proved authentic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sealcard.files import prepare_dir
from sealcard.formats.party_csv import (
    FileHeader,
    FileKind,
    PartyFileContentError,
    Role,
    parse_serial,
    serial_hex,
    utc_now,
)
from sealcard.formats.pdf_sheets import ParcelLine, shipping_manifest
from sealcard.parties.exchange import (
    StagedFile,
    write_party_file,
)
from sealcard.parties.party_home import OpenParty


@dataclass(frozen=True)
class ShipReport:
    batch: str
    sender: str
    parcels: int
    manifest: Path
    confirmation: Path
    file_id: str


def tracking_number(batch: str, serial: str) -> str:
    digest = hashlib.sha256(f"{batch}\x00{serial}".encode()).hexdigest()
    return "SC" + digest[:12].upper()


def ship_batch(
    party: OpenParty, path: Path, out_dir: Path, *, issuer_name: str | None = None
) -> ShipReport:
    """Open a shipping-data file; write the manifest and the confirmation for the issuer."""
    prepare_dir(out_dir, what="the output folder", fix="give another --out-dir", mode=0o750)
    issuer = party.peer(Role.ISSUER, issuer_name)
    shipped: list[tuple[str, str]] = []  # (serial, tracking)

    with StagedFile(out_dir, 0o640) as pdf:

        def consume(header: FileHeader, rows: Iterator[list[str]]) -> int:
            def parcels() -> Iterator[ParcelLine]:
                for position, serial_text, name, address in rows:
                    serial = serial_hex(parse_serial(serial_text))
                    if not name.strip() or not address.strip():
                        raise PartyFileContentError(f"card {serial}: no name or address")
                    tracking = tracking_number(header.batch, serial)
                    shipped.append((serial, tracking))
                    yield ParcelLine(position, tracking, serial, name, address)

            return shipping_manifest(pdf.handle, header.batch, str(header.sender), parcels())

        received, count = party.read_file(path, FileKind.SHIPPING, consume)
        header = received.header
        manifest = out_dir / f"shipping-manifest-{header.batch}.pdf"
        pdf.commit(manifest)
    at = utc_now()
    confirmation = out_dir / f"ship-confirmation-{header.batch}.p7m"
    write_party_file(
        confirmation,
        party.identity,
        [issuer],
        FileKind.SHIP_CONFIRMATION,
        header.batch,
        len(shipped),
        ([serial, tracking, at] for serial, tracking in shipped),
    )
    party.journal.record(header, manifest=str(manifest), confirmation=str(confirmation))
    return ShipReport(
        header.batch, str(header.sender), count, manifest, confirmation, header.file_id
    )
