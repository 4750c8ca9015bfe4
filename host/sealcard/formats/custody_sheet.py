"""The seed-share custody sheet: one A4 page per custodian, printed and kept in a safe.

It says which issuer and which backup the share belongs to (issuer certificate subject and key
fingerprint, the SLIP-39 set identifier shared by every share of one split, the date), how many
shares restore the seed, the share's words numbered in reading order, how to restore, and lines
for the custodian's name and signature. No QR code: a code invites a phone camera, and the
restore reads typed words.

The PDF goes to a stream the caller opened (a 0600 file): no temporary file, nothing on screen.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import BinaryIO, Final

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

WORD_COLUMNS: Final = 4
_MARGIN: Final = 20 * mm
_LINE: Final = 6 * mm
_WORD_ROW: Final = 7.5 * mm
_LABEL_WIDTH: Final = 42 * mm
_REGULAR, _BOLD, _WORDS = "Helvetica", "Helvetica-Bold", "Courier-Bold"


@dataclass(frozen=True)
class CustodySheet:
    """What one custodian's page shows."""

    words: tuple[str, ...]
    number: int  # this share, 1-based
    shares: int  # n
    threshold: int  # m
    set_id: int  # SLIP-39 identifier of the split
    issuer_subject: str
    issuer_key_sha256: str  # hex
    created: dt.date


def _latin1(text: str) -> str:
    """The built-in PDF fonts cover Latin-1; anything else prints as '?' rather than failing."""
    return text.encode("latin-1", "replace").decode("latin-1")


def _grouped(hex_text: str, size: int = 4) -> str:
    return " ".join(hex_text[i : i + size] for i in range(0, len(hex_text), size)).upper()


def render_custody_sheet(sheet: CustodySheet, out: BinaryIO) -> None:
    """Write the sheet as a one-page PDF to ``out``."""
    width, height = A4
    title = f"Seed backup share {sheet.number} of {sheet.shares}"
    canvas = Canvas(out, pagesize=A4, pageCompression=1)
    canvas.setTitle(title)  # the metadata names the share, never its words
    canvas.setAuthor("sealcard issuer hsm backup-seed")
    y = height - _MARGIN

    def line(text: str, font: str = _REGULAR, size: float = 11, step: float = _LINE) -> None:
        nonlocal y
        canvas.setFont(font, size)
        canvas.drawString(_MARGIN, y, _latin1(text))
        y -= step

    line(title, _BOLD, 18, 10 * mm)
    line(
        f"Any {sheet.threshold} of these {sheet.shares} shares restore the issuer HSM's BIP32 "
        "seed; fewer reveal nothing about it."
    )
    line("Keep this page in a safe. Do not photograph, scan, copy or type it anywhere", step=_LINE)
    line("but on the host of a seed restore.", step=9 * mm)

    def field(label: str, value: str, step: float = _LINE) -> None:
        nonlocal y
        canvas.setFont(_BOLD, 11)
        canvas.drawString(_MARGIN, y, label)
        canvas.setFont(_REGULAR, 11)
        canvas.drawString(_MARGIN + _LABEL_WIDTH, y, _latin1(value))
        y -= step

    field("Issuer", sheet.issuer_subject)
    field("Issuer key SHA-256", _grouped(sheet.issuer_key_sha256[:32]))
    field("", _grouped(sheet.issuer_key_sha256[32:]))
    field("Backup set", f"{sheet.set_id} (the same on every share of this backup)")
    field("Made on", f"{sheet.created.isoformat()} (UTC)")
    field("This share", f"{sheet.number} of {sheet.shares}, threshold {sheet.threshold}")
    field("Words", f"{len(sheet.words)}, read across, row by row", step=10 * mm)

    column = (width - 2 * _MARGIN) / WORD_COLUMNS
    rows = (len(sheet.words) + WORD_COLUMNS - 1) // WORD_COLUMNS
    canvas.setFont(_WORDS, 12)
    for index, word in enumerate(sheet.words):
        row, col = divmod(index, WORD_COLUMNS)
        canvas.drawString(_MARGIN + col * column, y - row * _WORD_ROW, f"{index + 1:>2}. {word}")
    y -= rows * _WORD_ROW + 6 * mm

    line("To restore (new HSM host):", _BOLD)
    line("sealcard issuer init, then sealcard issuer hsm init --restore, and type the words of")
    line(
        f"{sheet.threshold} shares of this backup set, one share per line, in any order.",
        step=12 * mm,
    )
    line("Custodian: ______________________________   Received on: ________________", step=12 * mm)
    line("Signature: ______________________________")
    canvas.setFont(_REGULAR, 8)
    canvas.drawString(
        _MARGIN, _MARGIN / 2, _latin1(f"{title} - backup set {sheet.set_id} - page 1 of 1")
    )
    canvas.showPage()
    canvas.save()
