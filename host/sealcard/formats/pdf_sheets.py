"""The printed pages of the chain (reportlab): the bureau's card-face print sheet, the
shipper's manifest and the mailer's PIN letters.

- Print sheet: A4, one line per card in personalization order: running number, serial and
  the name to print on the card face; batch id and page number on every page.
- Shipping manifest: A4, one block a parcel: tracking number, serial, name and address.
- PIN letter: A4, one letter a page, the recipient's name and address in the window of a
  DL window envelope (DIN 5008 form B: 20 mm from the left, 45 mm from the top, 85 x 45 mm),
  then the card serial, the PIN and the PUK. The PDF is written to a stream the caller opens
  (the mailer prints it; it is the one place a PIN is in clear, as on the paper letter).

Fonts: DejaVu Sans when installed (most scripts), else Helvetica (Latin-1).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

_DEJAVU: Final = Path("/usr/share/fonts/truetype/dejavu")
_LINE_MM: Final = 7.0
_MARGIN_MM: Final = 18.0


def _fonts() -> tuple[str, str]:
    regular, bold = _DEJAVU / "DejaVuSans.ttf", _DEJAVU / "DejaVuSans-Bold.ttf"
    if regular.exists() and bold.exists():
        if "DejaVuSans" not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont("DejaVuSans", str(regular)))
            pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", str(bold)))
        return "DejaVuSans", "DejaVuSans-Bold"
    return "Helvetica", "Helvetica-Bold"


@dataclass(frozen=True)
class FaceLine:
    """One card on the print sheet."""

    number: int
    serial: str
    name: str


def print_sheet(out: BinaryIO, batch: str, bureau: str, cards: Iterable[FaceLine]) -> int:
    """Write the card-face print sheet; returns the number of cards on it."""
    regular, bold = _fonts()
    canvas = Canvas(out, pagesize=A4, pageCompression=1)
    canvas.setTitle(f"Card-face print sheet, batch {batch}")
    canvas.setAuthor(bureau)
    width, height = A4
    top = height - _MARGIN_MM * mm
    bottom = _MARGIN_MM * mm
    page = 0
    y = 0.0
    count = 0

    def start_page() -> float:
        nonlocal page
        page += 1
        canvas.setFont(bold, 13)
        canvas.drawString(_MARGIN_MM * mm, top, f"Card-face print sheet - batch {batch}")
        canvas.setFont(regular, 9)
        canvas.drawRightString(width - _MARGIN_MM * mm, top, f"{bureau} - page {page}")
        canvas.setFont(bold, 10)
        row = top - 12 * mm
        canvas.drawString(_MARGIN_MM * mm, row, "#")
        canvas.drawString((_MARGIN_MM + 14) * mm, row, "Serial")
        canvas.drawString((_MARGIN_MM + 62) * mm, row, "Name on the card face")
        canvas.line(_MARGIN_MM * mm, row - 2 * mm, width - _MARGIN_MM * mm, row - 2 * mm)
        canvas.setFont(regular, 10)
        return float(row - _LINE_MM * mm)

    y = start_page()
    for card in cards:
        if y < bottom:
            canvas.showPage()
            y = start_page()
        canvas.drawString(_MARGIN_MM * mm, y, str(card.number))
        canvas.drawString((_MARGIN_MM + 14) * mm, y, card.serial)
        canvas.drawString((_MARGIN_MM + 62) * mm, y, card.name)
        y -= _LINE_MM * mm
        count += 1
    if count == 0:
        canvas.drawString(_MARGIN_MM * mm, y, "(no card was personalized)")
    canvas.showPage()
    canvas.save()
    return count


@dataclass(frozen=True, repr=False)
class LetterPage:
    """What one PIN letter shows. `repr` hides PIN and PUK."""

    serial: str
    name: str
    address: str
    pin: str
    puk: str

    def __repr__(self) -> str:
        return f"LetterPage(serial={self.serial}, name={self.name!r}, <pin>, <puk>)"


# DIN 5008 form B window of a DL envelope: 20 mm from the left, 45 mm from the top.
WINDOW_LEFT_MM: Final = 20.0
WINDOW_TOP_MM: Final = 45.0
WINDOW_WIDTH_MM: Final = 85.0
WINDOW_HEIGHT_MM: Final = 45.0


def pin_letters(out: BinaryIO, sender: str, letters: Iterable[LetterPage]) -> int:
    """Write one letter a page; returns the number of letters."""
    regular, bold = _fonts()
    canvas = Canvas(out, pagesize=A4, pageCompression=1)
    canvas.setTitle("PIN letters")
    canvas.setAuthor(sender)
    _width, height = A4
    count = 0
    for letter in letters:
        window_top = height - WINDOW_TOP_MM * mm
        canvas.setFont(regular, 7)
        canvas.drawString(WINDOW_LEFT_MM * mm, window_top - 4 * mm, f"{sender} - PIN service")
        canvas.setFont(regular, 11)
        y = window_top - 12 * mm
        for line in [letter.name, *letter.address.splitlines()][:6]:
            canvas.drawString(WINDOW_LEFT_MM * mm, y, line)
            y -= 5 * mm
        body = height - (WINDOW_TOP_MM + WINDOW_HEIGHT_MM + 20) * mm
        canvas.setFont(bold, 13)
        canvas.drawString(WINDOW_LEFT_MM * mm, body, "Your card's PIN and PUK")
        canvas.setFont(regular, 11)
        canvas.drawString(WINDOW_LEFT_MM * mm, body - 10 * mm, f"Card serial: {letter.serial}")
        canvas.drawString(
            WINDOW_LEFT_MM * mm,
            body - 17 * mm,
            "Your card arrives separately. Keep this letter apart from the card.",
        )
        canvas.setFont(bold, 16)
        canvas.drawString(WINDOW_LEFT_MM * mm, body - 32 * mm, f"PIN: {letter.pin}")
        canvas.drawString(WINDOW_LEFT_MM * mm, body - 42 * mm, f"PUK: {letter.puk}")
        canvas.setFont(regular, 9)
        canvas.drawString(
            WINDOW_LEFT_MM * mm,
            body - 54 * mm,
            "Use the PUK only to unblock the card after three wrong PINs.",
        )
        canvas.showPage()
        count += 1
    canvas.save()
    return count


@dataclass(frozen=True)
class ParcelLine:
    """One parcel on the shipping manifest."""

    position: str
    tracking: str
    serial: str
    name: str
    address: str


def shipping_manifest(out: BinaryIO, batch: str, sender: str, parcels: Iterable[ParcelLine]) -> int:
    """Write the shipping manifest: one block a parcel (tracking number, card serial, name and
    address); batch and page number on every page. Returns the number of parcels."""
    regular, bold = _fonts()
    canvas = Canvas(out, pagesize=A4, pageCompression=1)
    canvas.setTitle(f"Shipping manifest, batch {batch}")
    canvas.setAuthor(sender)
    width, height = A4
    top = height - _MARGIN_MM * mm
    bottom = _MARGIN_MM * mm
    left = _MARGIN_MM * mm
    page = 0
    count = 0

    def start_page() -> float:
        nonlocal page
        page += 1
        canvas.setFont(bold, 13)
        canvas.drawString(left, top, f"Shipping manifest - batch {batch}")
        canvas.setFont(regular, 9)
        canvas.drawRightString(width - left, top, f"from {sender} - page {page}")
        canvas.setFont(bold, 10)
        row = top - 12 * mm
        canvas.drawString(left, row, "#")
        canvas.drawString(left + 12 * mm, row, "Tracking")
        canvas.drawString(left + 48 * mm, row, "Card serial")
        canvas.drawString(left + 92 * mm, row, "Recipient")
        canvas.line(left, row - 2 * mm, width - left, row - 2 * mm)
        return float(row - _LINE_MM * mm)

    y = start_page()
    for parcel in parcels:
        lines = [parcel.name, *parcel.address.splitlines()][:6]
        if y - (len(lines) - 1) * 4.5 * mm < bottom:
            canvas.showPage()
            y = start_page()
        canvas.setFont(regular, 10)
        canvas.drawString(left, y, parcel.position)
        canvas.drawString(left + 12 * mm, y, parcel.tracking)
        canvas.drawString(left + 48 * mm, y, parcel.serial)
        for line in lines:
            canvas.drawString(left + 92 * mm, y, line)
            y -= 4.5 * mm
        y -= 2.5 * mm
        count += 1
    if count == 0:
        canvas.setFont(regular, 10)
        canvas.drawString(left, y, "(no parcel)")
    canvas.showPage()
    canvas.save()
    return count
