"""Seed-share custody sheets: the words printed on each PDF, read back with pdftotext, restore
the seed from any threshold of sheets; each sheet names its issuer, backup set, share, date."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from pathlib import Path

import pytest
from custody_pdf import pdf_text, share_words

from sealcard.crypto.secret_sharing import (
    SecretSharingError,
    combine_shares,
    share_info,
    split_seed,
)
from sealcard.formats.custody_sheet import CustodySheet, render_custody_sheet

THRESHOLD, SHARES = 2, 3
SUBJECT = "CN=Issuer HSM,O=Bank Zürich"
KEY_SHA256 = bytes(range(32)).hex()
DAY = dt.date(2026, 12, 1)


def write_sheets(seed: bytes, folder: Path) -> list[Path]:
    paths = []
    for mnemonic in split_seed(seed, THRESHOLD, SHARES):
        info = share_info(mnemonic)
        sheet = CustodySheet(
            tuple(mnemonic.split()),
            info.number,
            SHARES,
            info.threshold,
            info.set_id,
            SUBJECT,
            KEY_SHA256,
            DAY,
        )
        path = folder / f"share-{info.number}.pdf"
        with path.open("wb") as out:
            render_custody_sheet(sheet, out)
        paths.append(path)
    return paths


def test_printed_words_restore_the_seed_from_any_threshold(tmp_path: Path) -> None:
    seed = os.urandom(64)
    texts = [pdf_text(p) for p in write_sheets(seed, tmp_path)]
    words = [share_words(t) for t in texts]
    assert all(len(w.split()) == 59 for w in words)  # SLIP-39 words for a 64-byte secret
    for pair in itertools.combinations(words, THRESHOLD):
        assert combine_shares(list(pair)) == seed
    with pytest.raises(SecretSharingError):
        combine_shares(words[:1])


def test_each_sheet_says_whose_which_and_when(tmp_path: Path) -> None:
    seed = os.urandom(64)
    paths = write_sheets(seed, tmp_path)
    set_ids = set()
    for number, path in enumerate(paths, start=1):
        text = pdf_text(path)
        info = share_info(share_words(text))
        assert info.number == number and info.threshold == THRESHOLD
        set_ids.add(info.set_id)
        assert f"Seed backup share {number} of {SHARES}" in text
        assert f"Any {THRESHOLD} of these {SHARES} shares" in text
        assert SUBJECT in text
        assert KEY_SHA256[:4].upper() in text
        assert f"{info.set_id} (the same on every share" in text
        assert DAY.isoformat() in text
        assert "hsm init --restore" in text
        assert seed.hex() not in text
    assert len(set_ids) == 1  # one backup set
