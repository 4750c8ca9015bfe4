"""The printed pages, read back as a person (or a window envelope) would: text extraction with
word positions (poppler's pdftotext -bbox), page counts."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sealcard.formats.pdf_sheets import (
    WINDOW_HEIGHT_MM,
    WINDOW_LEFT_MM,
    WINDOW_TOP_MM,
    WINDOW_WIDTH_MM,
    FaceLine,
    LetterPage,
    ParcelLine,
    pin_letters,
    print_sheet,
    shipping_manifest,
)

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")
MM = 72 / 25.4  # points per millimetre
EPS = 0.5  # pdftotext rounds positions


def _text(pdf: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout


def _words(pdf: Path) -> list[tuple[int, str, float, float, float, float]]:
    """(page, word, xMin, yMin, xMax, yMax) in points from the top left."""
    html = subprocess.run(
        ["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    words = []
    for page, body in enumerate(html.split("<page ")[1:], start=1):
        for m in re.finditer(
            r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>',
            body,
        ):
            x0, y0, x1, y1 = (float(m.group(i)) for i in range(1, 5))
            words.append((page, m.group(5), x0, y0, x1, y1))
    return words


def test_pin_letters_put_name_and_address_in_the_envelope_window(tmp_path: Path) -> None:
    pdf = tmp_path / "letters.pdf"
    letters = [
        LetterPage("00A1B2C3D4E5F607", "Ada Lovelace", "12 St James's Square\nLondon", "482913",
                   "60418275"),
        LetterPage("00A1B2C3D4E5F608", "Grace Hopper", "1 Navy Yard\nArlington", "190357",
                   "77120945"),
    ]  # fmt: skip
    with pdf.open("wb") as handle:
        assert pin_letters(handle, "mailer:post", letters) == 2
    pages = _text(pdf).split("\f")
    assert "PIN: 482913" in pages[0] and "PUK: 60418275" in pages[0]
    assert "Card serial: 00A1B2C3D4E5F608" in pages[1] and "PIN: 190357" in pages[1]
    window = (
        WINDOW_LEFT_MM * MM - EPS,
        WINDOW_TOP_MM * MM - EPS,
        (WINDOW_LEFT_MM + WINDOW_WIDTH_MM) * MM + EPS,
        (WINDOW_TOP_MM + WINDOW_HEIGHT_MM) * MM + EPS,
    )
    for page, name, place in ((1, "Lovelace", "London"), (2, "Hopper", "Arlington")):
        for wanted in (name, place):
            (x0, y0, x1, y1) = next(w[2:] for w in _words(pdf) if w[0] == page and w[1] == wanted)
            assert window[0] <= x0 and x1 <= window[2] and window[1] <= y0 and y1 <= window[3]
        # The PIN is printed below the window: an envelope never shows it.
        pin = next(w for w in _words(pdf) if w[0] == page and w[1] == "PIN:")
        assert pin[3] > window[3]


def test_print_sheet_lists_every_card_in_order_over_several_pages(tmp_path: Path) -> None:
    pdf = tmp_path / "sheet.pdf"
    cards = [FaceLine(i, f"{i:016X}", f"Holder Number{i}") for i in range(1, 81)]
    with pdf.open("wb") as handle:
        assert print_sheet(handle, "B7", "bureau:print-house", cards) == 80
    text = _text(pdf)
    pages = [p for p in text.split("\f") if p.strip()]
    assert len(pages) >= 2
    assert all("Card-face print sheet - batch B7" in p for p in pages)
    found = [int(m.group(1)) for m in re.finditer(r"Holder Number(\d+)", text)]
    assert found == list(range(1, 81))
    assert re.search(r"^\s*42\s+000000000000002A\s+Holder Number42\s*$", text, re.MULTILINE)


def test_shipping_manifest_gives_each_parcel_its_tracking_number(tmp_path: Path) -> None:
    pdf = tmp_path / "manifest.pdf"
    parcels = [
        ParcelLine("1", "SC0123456789AB", "00A1B2C3D4E5F607", "Ada Lovelace", "12 Square\nLondon"),
        ParcelLine("2", "SCFEDCBA987654", "00A1B2C3D4E5F608", "Alan Turing", "Bletchley Park"),
    ]
    with pdf.open("wb") as handle:
        assert shipping_manifest(handle, "B7", "bureau:print-house", parcels) == 2
    text = _text(pdf)
    assert re.search(r"SC0123456789AB\s+00A1B2C3D4E5F607\s+Ada Lovelace", text)
    assert re.search(r"SCFEDCBA987654\s+00A1B2C3D4E5F608\s+Alan Turing", text)
    assert "London" in text and "Bletchley Park" in text
