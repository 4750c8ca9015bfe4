"""The README's main job (tools/demo.sh) end to end, on two blank simulated cards: run ONCE,
then checked two ways.

The chain: one folder per party, sealed files between them: provider pack, issuer import,
sealing, export, bureau personalization (one card FIG. 5, PIN and PUK from the issuer HSM;
one FIG. 2, from the bureau), results, shipping manifest, PIN letters printed by the mailer,
confirmations, both users signing with the PIN read off their letter, a PIN reset, a
termination, and the demo's own leak check of every party folder (tools/leak_check.py). Then
what a person would see in the printed pages.

Suite 7, secret hygiene (docs/assurance.md): the same run, with the issuer HSM service at
debug log level, is searched for every secret involved (tools/secret_scan.py: raw, hex,
base64 at every alignment, UTF-16) in every file it left, every temp file and every process
argument list seen while it ran, and its output: none may be found outside its container.
The seed is restored from SLIP-39 shares made here, so this test knows it independently of
the custodians' shares the demo writes; the PINs and PUKs come from the mailer's letters, the
token PINs from the homes' secrets/ folders (tools/leak_check.py's `demo_secrets`). The card's
own keys never leave the card (suite 1 checks the answers); the device authentication keys
and every party's file key are made in a token and known to nobody.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from simcards import reset_blank

from sealcard.crypto.secret_sharing import split_seed
from sealcard.issuer.records import DEFAULT_DERIVATION_BASE

pytestmark = pytest.mark.sim

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "tools" / "demo.sh"
CARDS = 2
TIMEOUT_S = 900
PARTIES = ("provider", "issuer", "bureau", "mailer", "shipper")
SIM_RUN = Path("/run/sealcard-sim")


def _tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


scan = _tool("secret_scan")
leak_check = _tool("leak_check")


def pdf_text(path: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


@dataclass
class MainJob:
    """One finished run of tools/demo.sh and what was seen while it ran."""

    code: int
    output: bytes
    demo: Path
    temp: Path
    seed: bytes
    shares: Path
    mnemonics: list[str]
    watch: Any
    env: dict[str, str]

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")


@pytest.fixture(scope="module")
def main_job(
    sim_cards: list[Any],
    tmp_path_factory: pytest.TempPathFactory,
    service_dirs: Callable[[str], Path],
) -> MainJob:
    cards = sim_cards[-CARDS:]
    for card in cards:
        reset_blank(card)
    tmp = tmp_path_factory.mktemp("main-job")
    seed = os.urandom(64)  # a sealcard seed is 64 bytes
    mnemonics = split_seed(seed, 2, 3)
    shares = tmp / "shares.txt"
    shares.write_text("\n".join(mnemonics[:2]) + "\n")
    shares.chmod(0o600)
    # the demo's issuer HSM service runs as its own user: the demo folder must be reachable,
    # and so must TMPDIR (like /tmp: anyone writes, the sticky bit keeps files their owner's)
    base = service_dirs("main-job")
    demo, temp = base / "demo", base / "tmp"
    temp.mkdir()
    temp.chmod(0o1777)
    env = {
        **os.environ,
        "SEALCARD_DEMO_SKIP_SETUP": "1",
        "SEALCARD_DEMO_READERS": "\n".join(card.reader for card in cards),
        "SEALCARD_DEMO_DIR": str(demo),
        "SEALCARD_DEMO_SEED_SHARES": str(shares),
        "SEALCARD_LOG_LEVEL": "DEBUG",
        "TMPDIR": str(temp),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    with scan.ProcessWatch(temp_dir=temp) as watch:
        run = subprocess.run(
            ["bash", str(DEMO)], env=env, capture_output=True, timeout=TIMEOUT_S, check=False
        )
    return MainJob(
        run.returncode, run.stdout + run.stderr, demo, temp, seed, shares, mnemonics, watch, env
    )


def test_demo_runs_the_whole_chain(main_job: MainJob) -> None:
    output, demo = main_job.text, main_job.demo
    assert main_job.code == 0, output[-4000:]

    # Every order went the whole way, in both PIN variants; then one card was terminated.
    assert f"orders      pin_mailed {CARDS}" in output
    assert f"orders      pin_mailed {CARDS - 1}, terminated 1" in output
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


def test_main_job_leaves_no_secret_outside_its_container(main_job: MainJob) -> None:
    assert main_job.code == 0, main_job.text[-4000:]
    demo, watch = main_job.demo, main_job.watch
    # the issuer HSM service (the one long-running process that logs) ran at debug level
    assert any(b"--log-level\x00DEBUG" in c for c in watch.cmdlines)

    # -- the secrets, and where each may be: the seed this test made (the custodians' shares
    #    the demo wrote must give the same), its keys, the letters' PINs and PUKs, token PINs
    found = leak_check.demo_secrets(
        demo,
        demo / "custodians",
        DEFAULT_DERIVATION_BASE,
        CARDS,
        seed=main_job.seed,
    )
    shares = main_job.shares
    secrets = [
        *found.secrets,
        *(
            scan.Secret(f"test share {i}", m.encode(), (shares,))
            for i, m in enumerate(main_job.mnemonics)
        ),
    ]
    names = {s.name for s in secrets}
    assert sum(n.startswith("the token PIN ") for n in names) >= 2 * len(PARTIES)  # user + SO
    assert sum(n.startswith("a PIN ") for n in names) == CARDS

    # -- the scan: every file, the sampled temp files and argument lists, the output
    scanner = scan.Scanner(secrets)
    roots = [demo, main_job.temp] + ([SIM_RUN] if SIM_RUN.is_dir() else [])
    findings = scanner.scan_roots(roots, exclude=[shares])
    findings += leak_check.scan_pdf_text(scanner, sorted(demo.rglob("*.pdf")))
    findings += watch.scan(scanner)
    findings += scanner.scan_bytes(main_job.output, "the demo's output")
    assert len(watch.cmdlines) > 20  # the sampler saw the job's processes
    assert not findings, "\n".join(f.line() for f in findings)

    # -- the main job's audit log: intact, and signed up to its last entry (seal, the issuer's
    #    PIN reset and termination each sign a checkpoint at their end)
    home = demo / "issuer" / "home"
    verify = subprocess.run(
        ["sealcard", "issuer", "audit", "verify", "--home", str(home), "--json"],
        env=main_job.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    audit = json.loads(verify.stdout)
    assert audit["intact"] and audit["checkpoints"] >= 3 and audit["unprotected_tail"] == 0

    # -- and the scan can fail: the same secrets, no containers allowed, are found in them
    strict = scan.Scanner([scan.Secret(s.name, s.value) for s in secrets if s.allowed])
    seen = {f.secret for f in strict.scan_roots([demo, shares])}
    seen |= {f.secret for f in leak_check.scan_pdf_text(strict, found.letter_pdfs)}
    contained = {s.name for s in secrets if s.name.startswith(("the token PIN", "a PIN", "a PUK"))}
    assert {"test share 0"} | contained <= seen
