"""The README's main job (tools/demo.sh) end to end, on two blank simulated cards.

One folder per party, sealed files between them: provider pack, issuer import, sealing,
export, bureau personalization (one card FIG. 5, PIN and PUK from the issuer HSM; one FIG. 2,
from the bureau), results, shipping manifest, PIN letters printed by the mailer,
confirmations, both users signing with the PIN read off their letter, and the leak check of
every party folder. Then what a person would see in the printed pages.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from simcards import reset_blank

pytestmark = pytest.mark.sim

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "tools" / "demo.sh"
CARDS = 2
TIMEOUT_S = 900
PARTIES = ("provider", "issuer", "bureau", "mailer", "shipper")


def pdf_text(path: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def test_demo_runs_the_whole_chain(sim_cards: list[Any], tmp_path: Path) -> None:
    cards = sim_cards[-CARDS:]
    for card in cards:
        reset_blank(card)
    demo = tmp_path / "demo"
    env = {
        **os.environ,
        "SEALCARD_DEMO_SKIP_SETUP": "1",
        "SEALCARD_DEMO_READERS": "\n".join(card.reader for card in cards),
        "SEALCARD_DEMO_DIR": str(demo),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    run = subprocess.run(
        ["bash", str(DEMO)], env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]

    # Every order went the whole way, in both PIN variants.
    assert f"orders      pin_mailed {CARDS}" in output
    assert output.count("verified_by  libsecp256k1") == 2
    assert "PIN reset by the issuer" in output and "PIN correct" in output
    assert "terminated" in output and "TERMINATED" in output
    # The leak check looked at every party folder and found nothing.
    assert f"{CARDS} user private key(s), {CARDS} PIN(s) and {CARDS} PUK(s)" in output
    for party in PARTIES:
        assert re.search(rf"^  {party} +clean ", output, re.MULTILINE), party
    assert "LEAK" not in output

    # Each party holds only what it made or was sent.
    outbox = {p: sorted(f.name for f in (demo / p / "home" / "outbox").glob("*")) for p in PARTIES}
    assert [n.split("-")[0] for n in outbox["provider"]] == ["device"]
    assert not list((demo / "shipper").rglob("personalization-*"))
    assert not list((demo / "shipper").rglob("pin-letters-*"))
    assert all(p.name.startswith("print-sheet-") for p in (demo / "bureau").rglob("*.pdf"))

    # What the people at each end see. Letters: one a page, PIN and PUK, both variants.
    letters = sorted((demo / "mailer" / "home" / "outbox").glob("pin-letters-*.pdf"))
    assert sorted(p.name.rsplit("-", 1)[1] for p in letters) == ["bureau.pdf", "issuer.pdf"]
    pages = [page for p in letters for page in pdf_text(p).split("\f") if page.strip()]
    assert len(pages) == CARDS
    secrets: list[str] = []
    serials: list[str] = []
    for page in pages:
        serial = re.search(r"Card serial: ([0-9A-F]+)", page)
        pin = re.search(r"PIN: ([0-9]{6})\b", page)
        puk = re.search(r"PUK: ([0-9]{8})\b", page)
        assert serial and pin and puk, page
        assert "Example Street" in page and "Test Town" in page
        serials.append(serial.group(1))
        secrets += [pin.group(1), puk.group(1)]
    # No PIN or PUK reached the output: they went from the letter through a pipe.
    for secret in secrets:
        assert not re.search(rf"(?<![0-9A-Za-z]){secret}(?![0-9A-Za-z])", output)
    # The print sheets name every personalized card; the manifests give each a tracking number.
    sheets = "".join(pdf_text(p) for p in (demo / "bureau" / "home" / "outbox").glob("*.pdf"))
    manifests = "".join(pdf_text(p) for p in (demo / "shipper" / "home" / "outbox").glob("*.pdf"))
    for serial in serials:
        assert serial in sheets
        assert re.search(rf"SC[0-9A-F]{{12}} +{serial}", manifests), manifests
    assert "Ada Lovelace" in sheets and "Alan Turing" in sheets
