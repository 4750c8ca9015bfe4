"""The issuer HSM service runs as deploy/systemd/sealcard-issuer-hsm.service confines it: with
memory never writable and executable (MemoryDenyWriteExecute=yes), here enforced by the kernel's
PR_SET_MDWE, which the service inherits; it seals and answers a signed ping."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sealcard_cli import run_json, sealcard_env

pytestmark = pytest.mark.issuer

PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1
UNDER_MDWE = (
    "import ctypes, os, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    f"if libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:\n"
    "    sys.exit('PR_SET_MDWE: ' + os.strerror(ctypes.get_errno()))\n"
    "os.execvp(sys.argv[1], sys.argv[1:])\n"
)


def under_mdwe(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", UNDER_MDWE, *argv],
        env=sealcard_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def mdwe() -> None:
    probe = under_mdwe(sys.executable, "-c", "pass")
    if probe.returncode != 0:
        pytest.skip(f"this kernel has no PR_SET_MDWE (Linux 6.3+): {probe.stderr.strip()}")


def test_the_check_can_fail(mdwe: None) -> None:
    """Control: under the same confinement, a cffi callback (write+execute memory) is refused."""
    pytest.importorskip("cffi")
    code = "import cffi; f = cffi.FFI(); f.callback('int(int)', lambda x: x)"
    result = under_mdwe(sys.executable, "-c", code)
    assert result.returncode != 0
    assert "write+execute" in result.stderr


def test_service_seals_and_answers_without_write_execute_memory(
    mdwe: None, service_dirs: Callable[[str], Path]
) -> None:
    """Also as it runs in CI: started as root, it drops to its own user (sealcard-hsm) with
    locked memory, and the confinement carries over into every worker process."""
    if shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")
    home = str(service_dirs("mdwe") / "home")
    run_json("issuer", "init", "--home", home)
    run_json("issuer", "hsm", "init", "--home", home)
    sealcard = shutil.which("sealcard")
    assert sealcard is not None
    started = under_mdwe(sealcard, "issuer", "hsm", "start", "--home", home, "--json")
    assert started.returncode == 0, started.stderr
    try:
        # The service process inherited the confinement from the command that started it.
        user = run_json("issuer", "user", "add", "--home", home, "--name", "A", "--address", "B")
        run_json("issuer", "order", "--home", home, "--user", str(user["user"]["id"]),
                 "--count", "2", "--pin-source", "none")  # fmt: skip
        run_json("issuer", "pack", "import-fake", "--home", home, "--cards", "2",
                 "--pack", "P1", "--rsa-pool", "1")  # fmt: skip
        sealed = run_json("issuer", "seal", "--home", home)
        assert sealed["sealed"] == 2
        report = run_json("doctor", "--for", "issuer", "--home", home)
        service = [c for c in report["checks"] if c["name"] == "hsm service"]
        assert service[0]["status"] == "ok"
    finally:
        run_json("issuer", "hsm", "stop", "--home", home)
