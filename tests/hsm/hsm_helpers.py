"""Start and stop the issuer HSM service as a subprocess (shared by the hsm tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sealcard.hsm.config import SOFTHSM_MODULE_CANDIDATES

SERVICE_START_TIMEOUT_S = 20.0


def softhsm_available() -> bool:
    return any(Path(p).exists() for p in SOFTHSM_MODULE_CANDIDATES) or bool(
        os.environ.get("SEALCARD_PKCS11_MODULE")
    )


def start_service(home: Path, socket_path: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sealcard.hsm.issuer_service",
            "--home",
            str(home),
            "--log-level",
            "WARNING",
        ],
    )
    deadline = time.monotonic() + SERVICE_START_TIMEOUT_S
    while not socket_path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"issuer HSM service exited with {proc.returncode}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("issuer HSM service did not start")
        time.sleep(0.05)
    return proc


def stop_service(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
