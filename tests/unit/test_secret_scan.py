"""tools/secret_scan.py, the scanner of suite 7: it finds a planted secret in every encoding it
claims, inside longer data, and stays quiet where the secret is allowed or absent."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

TOOL = Path(__file__).parents[2] / "tools" / "secret_scan.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("secret_scan", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["secret_scan"] = module
    spec.loader.exec_module(module)
    return module


scan = _load()


@pytest.mark.parametrize("prefix", range(7))
@pytest.mark.parametrize("suffix", range(4))
def test_base64_inside_longer_data_at_every_alignment(prefix: int, suffix: int) -> None:
    secret = os.urandom(32)
    blob = os.urandom(prefix) + secret + os.urandom(suffix)
    scanner = scan.Scanner([scan.Secret("key", secret)])
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        found = scanner.scan_bytes(b"x=" + encode(blob) + b"\n", "memory")
        assert [f.secret for f in found] == ["key"]


def test_every_encoding_is_found_and_nothing_else() -> None:
    secret = os.urandom(32)
    scanner = scan.Scanner([scan.Secret("key", secret)])
    for data in (b"..." + secret, secret.hex().encode(), secret.hex().upper().encode()):
        assert scanner.scan_bytes(data, "m")
    assert not scanner.scan_bytes(os.urandom(4096), "m")
    text = scan.Scanner([scan.Secret("phrase", b"correct horse battery")])
    assert text.scan_bytes("correct horse battery".encode("utf-16-le"), "m")


def test_a_key_inside_a_pem_file_is_found_across_its_line_breaks() -> None:
    secret = os.urandom(64)
    body = base64.b64encode(os.urandom(5) + secret + os.urandom(9)).decode()
    pem = "-----BEGIN X-----\n" + "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    assert scan.Scanner([scan.Secret("key", secret)]).scan_bytes(pem.encode() + b"\n", "m")


def test_a_pin_counts_only_as_a_whole_number() -> None:
    scanner = scan.Scanner([scan.Secret("pin", b"246810")])
    assert scanner.scan_bytes(b"pin=246810\n", "m")
    assert not scanner.scan_bytes(b"at 2026-12-01T12:24:68:1024681099", "m")


def test_cli_roots_allowed_containers_and_exit_codes(tmp_path: Path) -> None:
    secret = os.urandom(32)
    vault, logs = tmp_path / "vault", tmp_path / "logs"
    vault.mkdir()
    logs.mkdir()
    (vault / "key.bin").write_bytes(secret)
    (logs / "run.log").write_text("nothing here\n")
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps([{"name": "key", "hex": secret.hex(), "allowed": [str(vault)]}]))

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(TOOL), "--secrets", str(secrets), "--root", str(tmp_path)],
            capture_output=True,
            text=True,
            check=False,
        )

    clean = run()
    assert clean.returncode == 0, clean.stdout
    (logs / "run.log").write_text(f"debug: key {base64.b64encode(b'ab' + secret).decode()}\n")
    leaked = run()
    assert leaked.returncode == 1
    assert leaked.stdout.strip().splitlines() == [f"found: key (base64@2) in {logs / 'run.log'}"]
