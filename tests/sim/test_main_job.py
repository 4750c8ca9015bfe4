"""The README's main job (tools/demo.sh) end to end, on two blank simulated cards.

Every party's CLI in turn: provider step A, issuer stock from the genuine cards, sealing by
the issuer HSM service on SoftHSM2, export, bureau personalization, bureau results, and the
user signing with the PIN taken from the mailer's letter (checked by libsecp256k1).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from simcards import reset_blank

from sealcard.hsm.pin_letter import open_pin_letter

pytestmark = pytest.mark.sim

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "tools" / "demo.sh"
CARDS = 2
TIMEOUT_S = 600


def test_demo_runs_the_whole_chain(
    sim_cards: list[Any], service_dirs: Callable[[str], Path]
) -> None:
    # the issuer HSM service of the demo runs as its own user: its home must be reachable
    base = service_dirs("demo")
    cards = sim_cards[-CARDS:]
    for card in cards:
        reset_blank(card)
    env = {
        **os.environ,
        "SEALCARD_DEMO_SKIP_SETUP": "1",
        "SEALCARD_DEMO_READERS": "\n".join(card.reader for card in cards),
        "SEALCARD_DEMO_DIR": str(base / "demo"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    run = subprocess.run(
        ["bash", str(DEMO)], env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    assert f"{CARDS} personalized, 0 failed, 0 unknown serials" in output
    assert "verified_by  libsecp256k1" in output
    # the terminated card's order says so (issue 7: it stayed `personalized` before)
    assert f"orders      personalized {CARDS - 1}, terminated 1" in output
    assert "PIN reset by the issuer" in output and "PIN correct" in output
    assert "terminated" in output and "TERMINATED" in output
    # No PIN or PUK reached the output: the letters' PINs only went through a pipe.
    demo = base / "demo"
    letters = sorted((demo / "mailer" / "letters").glob("*.p7m"))
    assert len(letters) == CARDS
    mailer_key = load_pem_private_key((demo / "mailer" / "key.pem").read_bytes(), None)
    issuer_cert = x509.load_pem_x509_certificate(
        (demo / "issuer" / "hsm" / "issuer-cert.pem").read_bytes()
    )
    assert isinstance(mailer_key, rsa.RSAPrivateKey)
    issuer_key = issuer_cert.public_key()
    assert isinstance(issuer_key, ec.EllipticCurvePublicKey)
    for letter in letters:
        data = open_pin_letter(letter.read_bytes(), mailer_key, issuer_key)
        assert data.serial.hex().upper() == letter.stem
        for secret in (data.pin, data.puk):
            token = re.escape(secret.decode())
            assert not re.search(rf"(?<![0-9A-Za-z]){token}(?![0-9A-Za-z])", output)
