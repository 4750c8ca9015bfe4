"""`sealcard issuer serve` as a user meets it: refusals before anything listens (exit 2, a
setting to fix, in one line on stderr), and a running server that answers over TLS with the
certificate `issuer init` made (checked against its fingerprint)."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "host")}
    return subprocess.run(
        [sys.executable, "-m", "sealcard.cli.main", *args],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip


def test_serve_refuses_before_listening(tmp_path: Path) -> None:
    missing = _run("issuer", "serve", "--home", str(tmp_path / "nowhere"), "--no-hsm")
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: no issuer home at") and "issuer init" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    home = tmp_path / "home"
    assert _run("issuer", "init", "--home", str(home)).returncode == 0
    bad = _run("issuer", "serve", "--home", str(home), "--no-hsm", "--listen", "nonsense")
    assert bad.returncode == 2 and "is not HOST:PORT" in bad.stderr
    no_hsm = _run("issuer", "serve", "--home", str(home))
    assert no_hsm.returncode == 2 and "issuer hsm init" in no_hsm.stderr
    root = _run("issuer", "serve", "--home", str(home), "--no-hsm", "--root", "/nope")
    assert root.returncode == 2  # a usage error: the file does not exist
    (home / "tls" / "server-key.pem").unlink()
    gone = _run("issuer", "serve", "--home", str(home), "--no-hsm")
    assert gone.returncode == 2 and "missing TLS file" in gone.stderr


def test_serve_answers_over_tls_and_stops_on_sigterm(tmp_path: Path) -> None:
    home = tmp_path / "home"
    init = _run("issuer", "init", "--home", str(home), "--json")
    assert init.returncode == 0
    import json

    fingerprint = json.loads(init.stdout)["tls_sha256"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "host")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sealcard.cli.main", "issuer", "serve", "--home", str(home),
         "--no-hsm", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        trust = ssl.create_default_context(cafile=str(home / "tls" / "server.pem"))
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None
            try:
                health = httpx.get(f"https://127.0.0.1:{port}/v1/health", verify=trust)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert health.json() == {"ok": True, "hsm": False}
        assert health.headers["strict-transport-security"].startswith("max-age=")
        try:
            httpx.get(f"https://127.0.0.1:{port}/v1/health")  # not trusted without the cert
            raise AssertionError("a self-signed certificate was trusted by default")
        except httpx.ConnectError:
            pass
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises the signal it caught (exit by SIGTERM)
    assert proc.returncode in (0, -signal.SIGTERM) and "Finished server process" in err
    assert f"SHA-256 {fingerprint}" in err  # the operator sees what users compare
