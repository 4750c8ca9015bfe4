"""Read a seed-share custody sheet back as a person would: its text, as pdftotext extracts it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

_NUMBERED_WORD = re.compile(r"(?<![\w.])(\d{1,2})\. ([a-z]+)\b")


def pdf_text(path: Path) -> str:
    """The text of a PDF (pdftotext from poppler-utils, which tools/setup.sh installs)."""
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext is not installed (apt-get install poppler-utils)")
    done = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    )
    return done.stdout


def share_words(text: str) -> str:
    """The share's words in order, from the numbered grid ("1. word  2. word ...")."""
    found = {int(n): word for n, word in _NUMBERED_WORD.findall(text)}
    assert found and sorted(found) == list(range(1, len(found) + 1)), found
    return " ".join(found[n] for n in sorted(found))
