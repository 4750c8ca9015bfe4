"""The issuer HSM service as an operator watches it: started by `issuer hsm start --metrics`,
it seals cards (one held for a mailer this HSM lacks) and refuses a request that is not one;
then every line of its log is a JSON object with the fixed keys, every request line carries
its id, outcome and time, the scraped counters moved by exactly what was done, and neither
the log nor the metrics hold a secret of the test (the seed and its keys, the token PINs, the
cards' PINs and PUKs, the mailer's key, the seed shares; tools/secret_scan.py's search)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from prometheus_client.parser import text_string_to_metric_families

from sealcard.crypto.bip32 import ExtendedPrivateKey
from sealcard.crypto.secret_sharing import split_seed
from sealcard.hsm.pin_letter import open_pin_letter
from sealcard.issuer.config import load_home
from sealcard.issuer.records import DEFAULT_DERIVATION_BASE, Records

pytestmark = pytest.mark.issuer

ROOT = Path(__file__).resolve().parents[2]
FIXED_KEYS = {"time", "level", "logger", "event", "message", "pid"}
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _scanner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("secret_scan", ROOT / "tools" / "secret_scan.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["secret_scan"] = module
    spec.loader.exec_module(module)
    return module


def cli(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sealcard.cli.main", "issuer", *args, "--home", str(home)],
        capture_output=True, text=True, timeout=300, check=False, input=stdin,
    )  # fmt: skip


def ok(home: Path, *args: str, stdin: str | None = None) -> dict[str, Any]:
    result = cli(home, *args, "--json", stdin=stdin)
    assert result.returncode == 0, result.stdout + result.stderr
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


def scrape(port: int) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
        text = answer.read().decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return text, values


def value(values: dict[Any, float], name: str, **labels: str) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_logs_are_json_lines_metrics_move_and_neither_holds_a_secret(
    service_dirs: Callable[[str], Path], tmp_path: Path
) -> None:
    if shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")
    home = service_dirs("observe") / "home"  # the service's own user reaches it
    seed = os.urandom(64)
    shares = split_seed(seed, 2, 3)
    ok(home, "init")
    ok(home, "hsm", "init", "--restore", stdin="\n".join(shares[:2]) + "\n")
    port = free_port()
    started = ok(home, "hsm", "start", "--metrics", f"127.0.0.1:{port}")
    try:
        assert started["metrics"] == f"127.0.0.1:{port}"
        _, before = scrape(port)
        assert value(before, "sealcard_hsm_workers") >= 1
        mailer = rsa.generate_private_key(65537, 2048)
        pem = tmp_path / "post.pem"
        pem.write_bytes(
            mailer.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        ok(home, "hsm", "mailer", "add", "--id", "post", "--key", str(pem))
        ok(home, "user", "add", "--name", "Ada", "--address", "1 Main St")
        ok(home, "pack", "import-fake", "--cards", "6", "--rsa-pool", "1")
        ok(home, "order", "--user", "1", "--count", "3", "--mailer", "post")
        records = Records.open(load_home(home).database_url, "test")
        with records.db:
            records.record_mailers(["elsewhere"])  # known to the records, not to this HSM
        records.close()
        ok(home, "order", "--user", "1", "--mailer", "elsewhere")
        sealed = cli(home, "seal", "--json")
        assert sealed.returncode == 1, sealed.stdout + sealed.stderr  # one order held
        assert json.loads(sealed.stdout)["sealed"] == 3
        # a request that is not one: refused as malformed
        with socket.socket(socket.AF_UNIX) as raw:
            raw.connect(str(load_home(home).socket_path))
            junk = b"not a sealcard request at all"
            raw.sendall(struct.pack(">I", len(junk)) + junk)
            assert raw.recv(4)  # a (signed) refusal comes back
        metrics_text, after = scrape(port)
    finally:
        stopped = cli(home, "hsm", "stop", "--json")
    assert stopped.returncode == 0, stopped.stderr
    # a metrics address that is taken: the start fails with the reason from the JSON log
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        refused = cli(home, "hsm", "start", "--metrics", str(busy))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stderr.startswith(f"error: the issuer HSM service did not start: cannot "
                                     f"serve metrics on {busy}")  # fmt: skip
    assert refused.stderr.count("\n") == 1
    bad = cli(home, "hsm", "start", "--metrics", "no-port-here")
    assert bad.returncode == 2 and "is not PORT or HOST:PORT" in bad.stderr

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("sealcard_hsm_cards_sealed_total") == 3
    assert moved("sealcard_hsm_card_refusals_total", reason="unknown-mailer") == 1
    assert moved("sealcard_hsm_card_refusals_total", reason="bad-device-key") == 0
    assert moved("sealcard_hsm_request_refusals_total", reason="malformed") == 1
    assert moved("sealcard_hsm_requests_total", op="register-mailer", outcome="ok") == 1
    assert moved("sealcard_hsm_requests_total", op="seal-batch", outcome="ok") == 1
    assert moved("sealcard_hsm_requests_total", op="-", outcome="refused") == 1
    assert moved("sealcard_hsm_request_duration_seconds_count", op="seal-batch") == 1
    # PINs and PUKs come from the token's RNG; the mailer key became a token object
    assert moved("sealcard_hsm_pkcs11_call_duration_seconds_count", operation="create_object") == 1
    assert value(after, "sealcard_hsm_pkcs11_call_duration_seconds_count",
                 operation="generate_random") >= 1  # fmt: skip
    assert value(after, "sealcard_hsm_queue_depth") == 0
    assert value(after, "sealcard_hsm_requests_in_flight") == 0

    # -- the log: JSON lines, every one; each request once, with id, outcome and time
    log_text = (load_home(home).run_dir / "issuer-hsm.log").read_text(encoding="utf-8")
    entries = [json.loads(line) for line in log_text.splitlines()]  # each line parses
    assert entries[-1]["event"] == "service.refused" and entries[-2]["event"] == "service.stop"
    entries = entries[:-2]  # the refused start above: its stop, then its refusal
    for entry in entries:
        assert entry.keys() >= FIXED_KEYS, entry
        assert RFC3339_UTC.fullmatch(entry["time"]) and entry["level"] in ("info", "warning")
    events = [e["event"] for e in entries]
    assert events[0] == "service.start" and events[-1] == "service.stop"
    assert entries[0]["metrics"] == f"127.0.0.1:{port}"
    requests = [e for e in entries if e["event"] == "request"]
    for entry in requests:
        assert re.fullmatch(r"[0-9a-f]{32}", entry["request_id"]), entry
        assert entry["outcome"] in ("ok", "refused", "failed")
        assert isinstance(entry["duration_ms"], float | int) and entry["duration_ms"] >= 0
    (seal,) = [e for e in requests if e["op"] == "seal-batch"]
    assert (seal["outcome"], seal["cards"], seal["cards_refused"]) == ("ok", 3, 1)
    (refused,) = [e for e in requests if e["outcome"] == "refused"]
    assert refused["reason"] == "malformed" and refused["level"] == "warning"
    assert len(requests) == sum(
        v - value(before, n, **dict(k)) for (n, k), v in after.items()
        if n == "sealcard_hsm_requests_total"
    )  # fmt: skip

    # -- no secret in the log or the metrics
    scan = _scanner()
    master = ExtendedPrivateKey.from_seed(seed)
    base = master.derive(DEFAULT_DERIVATION_BASE)
    secrets: list[Any] = [
        scan.Secret("seed", seed),
        scan.Secret("master key", master.private_key),
        scan.Secret("derivation base key", base.private_key),
        *(scan.Secret(f"user key {i}", base.child(i).private_key) for i in range(8)),
        *(scan.Secret(f"seed share {i}", s.encode()) for i, s in enumerate(shares)),
        scan.Secret("mailer key d", mailer.private_numbers().d.to_bytes(256, "big")),
    ]
    pin_files = sorted(load_home(home).secrets_dir.iterdir())
    secrets += [scan.Secret(f"token PIN {p.name}", p.read_bytes().strip()) for p in pin_files]
    issuer_key = x509.load_pem_x509_certificate(
        (home / "hsm" / "issuer-cert.pem").read_bytes()
    ).public_key()
    assert isinstance(issuer_key, ec.EllipticCurvePublicKey)
    with sqlite3.connect(home / "issuer.db") as db:
        letters = [bytes(row[0]) for row in db.execute("SELECT letter FROM pin_letters")]
    assert len(letters) == 3
    for n, letter in enumerate(letters):
        opened = open_pin_letter(letter, mailer, issuer_key)
        secrets += [scan.Secret(f"PIN {n}", opened.pin), scan.Secret(f"PUK {n}", opened.puk)]
    scanner = scan.Scanner(secrets)
    found = scanner.scan_bytes(log_text.encode(), "the service's log")
    found += scanner.scan_bytes(metrics_text.encode(), "the metrics")
    assert not found, "\n".join(f.line() for f in found)
    # and the search can fail: the token PINs are found where they are
    seen = {f.secret for f in scanner.scan_roots([load_home(home).secrets_dir])}
    assert {f"token PIN {p.name}" for p in pin_files if p.name.endswith("user-pin")} <= seen
