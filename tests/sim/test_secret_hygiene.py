"""Suite 7, secret hygiene (docs/assurance.md): the main job (tools/demo.sh) at debug log level,
then every file it left, every temp file and every process argument list seen while it ran,
and its output, searched for every secret involved (tools/secret_scan.py: raw, hex, base64 at
every alignment, UTF-16): none may be found outside its sealed container.

The seed is restored from SLIP-39 shares made here, so this test knows it and every key it
derives (master, derivation base, each user key); the PINs and PUKs come from the mailer's
letters (opened as the mailer does); the token PINs from the home's secrets/ folder; the
mailer's RSA key from its key file. The card's own keys never leave the card (suite 1 checks
the answers); the device authentication keys are made in the HSM and known to nobody.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from simcards import reset_blank

from sealcard.crypto.bip32 import ExtendedPrivateKey
from sealcard.crypto.secret_sharing import split_seed
from sealcard.hsm.pin_letter import open_pin_letter
from sealcard.issuer.records import DEFAULT_DERIVATION_BASE

pytestmark = pytest.mark.sim

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "tools" / "demo.sh"
CARDS = 2
TIMEOUT_S = 600
SIM_RUN = Path("/run/sealcard-sim")


def _scanner_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("secret_scan", ROOT / "tools" / "secret_scan.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["secret_scan"] = module
    spec.loader.exec_module(module)
    return module


scan = _scanner_module()


def _rsa_secrets(name: str, key: rsa.RSAPrivateKey, allowed: Path) -> list[Any]:
    numbers = key.private_numbers()
    parts = {"d": numbers.d, "p": numbers.p, "q": numbers.q, "dmp1": numbers.dmp1}
    return [
        scan.Secret(
            f"{name} {part}", value.to_bytes((value.bit_length() + 7) // 8, "big"), (allowed,)
        )
        for part, value in parts.items()
    ]


def test_main_job_leaves_no_secret_outside_its_container(
    sim_cards: list[Any], tmp_path: Path, service_dirs: Callable[[str], Path]
) -> None:
    cards = sim_cards[-CARDS:]
    for card in cards:
        reset_blank(card)
    seed = os.urandom(64)  # a sealcard seed is 64 bytes
    mnemonics = split_seed(seed, 2, 3)
    shares = tmp_path / "shares.txt"
    shares.write_text("\n".join(mnemonics[:2]) + "\n")
    shares.chmod(0o600)
    # the demo's issuer HSM service runs as its own user: the demo folder must be reachable,
    # and so must TMPDIR (like /tmp: anyone writes, the sticky bit keeps files their owner's)
    base = service_dirs("hygiene")
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
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:].decode(errors="replace")
    home = demo / "issuer"
    # the issuer HSM service (the one long-running process that logs) ran at debug level
    assert any(b"--log-level\x00DEBUG" in c for c in watch.cmdlines)

    # -- the secrets, and where each may be
    master = ExtendedPrivateKey.from_seed(seed)
    base = master.derive(DEFAULT_DERIVATION_BASE)
    secrets: list[Any] = [
        scan.Secret("seed", seed),
        scan.Secret("master key", master.private_key),
        scan.Secret("master chain code", master.chain_code),
        scan.Secret("derivation base key", base.private_key),
        *(scan.Secret(f"user key {i}", base.child(i).private_key) for i in range(CARDS)),
        *(scan.Secret(f"seed share {i}", m.encode(), (shares,)) for i, m in enumerate(mnemonics)),
    ]
    mailer_pem = demo / "mailer" / "key.pem"
    mailer_key = load_pem_private_key(mailer_pem.read_bytes(), None)
    assert isinstance(mailer_key, rsa.RSAPrivateKey)
    secrets += _rsa_secrets("mailer key", mailer_key, mailer_pem)
    issuer_cert = x509.load_pem_x509_certificate((home / "hsm" / "issuer-cert.pem").read_bytes())
    issuer_key = issuer_cert.public_key()
    assert isinstance(issuer_key, ec.EllipticCurvePublicKey)
    letters = sorted((demo / "mailer" / "letters").glob("*.p7m"))
    assert len(letters) == CARDS
    for letter in letters:
        opened = open_pin_letter(letter.read_bytes(), mailer_key, issuer_key)
        secrets.append(scan.Secret(f"PIN of {letter.stem}", opened.pin))
        secrets.append(scan.Secret(f"PUK of {letter.stem}", opened.puk))
    pin_files = sorted((home / "secrets").iterdir())
    assert pin_files
    for path in pin_files:
        secrets.append(scan.Secret(f"token PIN {path.name}", path.read_bytes().strip(), (path,)))

    # -- the scan: every file, the sampled temp files and argument lists, the output
    scanner = scan.Scanner(secrets)
    roots = [demo, temp] + ([SIM_RUN] if SIM_RUN.is_dir() else [])
    found = scanner.scan_roots(roots, exclude=[shares])
    found += watch.scan(scanner)
    found += scanner.scan_bytes(output, "the demo's output")
    assert len(watch.cmdlines) > 20  # the sampler saw the job's processes
    assert not found, "\n".join(f.line() for f in found)

    # -- the main job's audit log: intact, and signed up to its last entry (seal, the issuer's
    #    PIN reset and termination each sign a checkpoint at their end)
    verify = subprocess.run(
        ["sealcard", "issuer", "audit", "verify", "--home", str(home), "--json"],
        env=env,
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
    assert {"mailer key d", "seed share 0"} | {f"token PIN {p.name}" for p in pin_files} <= seen
