"""`sealcard doctor --for issuer` on a SoftHSM2 issuer home: everything ready (exit 0), and each
thing an operator gets wrong (service not started, service died, token label, PIN file mode,
PKCS#11 module path) named with its fix (exit 1)."""

from __future__ import annotations

import os
import shutil
import signal
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from sealcard_cli import run_json

pytestmark = pytest.mark.issuer


def doctor(home: Path, expect: int) -> dict[str, dict[str, Any]]:
    report = run_json("doctor", "--for", "issuer", "--home", str(home), expect=expect)
    assert report["ok"] is (expect == 0)
    return {c["name"]: c for c in report["checks"]}


@pytest.fixture(scope="module")
def hsm_home(service_dirs: Callable[[str], Path]) -> Iterator[Path]:
    if shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")
    home = service_dirs("doctor") / "home"  # the service's own user reaches it
    run_json("issuer", "init", "--home", str(home))
    run_json("issuer", "hsm", "init", "--home", str(home))
    yield home
    run_json("issuer", "hsm", "stop", "--home", str(home))


def variant(hsm_home: Path, tmp_path: Path, **issuer_hsm: str) -> Path:
    """A copy of the home whose [issuer_hsm] has these values (tokens stay where they are)."""
    home = tmp_path / "variant"
    shutil.copytree(hsm_home, home, ignore=shutil.ignore_patterns("run"))
    (home / "run").mkdir(mode=0o700)
    config = tomllib.loads((home / "config.toml").read_text(encoding="utf-8"))
    config["issuer_hsm"].update(issuer_hsm)
    (home / "config.toml").write_text(tomli_w.dumps(config), encoding="utf-8")
    return home


def test_service_stopped_running_and_dead(hsm_home: Path) -> None:
    checks = doctor(hsm_home, expect=1)
    assert [n for n, c in checks.items() if c["status"] == "fail"] == ["hsm service"]
    assert "not running" in checks["hsm service"]["detail"]
    assert "sealcard-issuer-hsm.service" in checks["hsm service"]["fix"]
    for name in ("issuer home", "database", "schema", "token (issuer)", "token (system)"):
        assert checks[name]["status"] == "ok", checks[name]

    started = run_json("issuer", "hsm", "start", "--home", str(hsm_home))
    checks = doctor(hsm_home, expect=0)
    assert checks["hsm service"]["status"] == "ok"
    assert "signed ping" in checks["hsm service"]["detail"]

    os.kill(int(started["pid"]), signal.SIGKILL)  # dies without removing its socket
    deadline = time.monotonic() + 10
    while Path(f"/proc/{started['pid']}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (hsm_home / "run" / "issuer-hsm.sock").exists()
    checks = doctor(hsm_home, expect=1)
    assert checks["hsm service"]["status"] == "fail"
    assert "does not answer" in checks["hsm service"]["detail"]


def test_wrong_token_label(hsm_home: Path, tmp_path: Path) -> None:
    checks = doctor(variant(hsm_home, tmp_path, token_label="no-such-token"), expect=1)
    assert checks["token (issuer)"]["status"] == "fail"
    assert "no-such-token" in checks["token (issuer)"]["detail"]
    assert checks["hsm service"]["status"] == "skip"


def test_pin_file_readable_by_others(hsm_home: Path, tmp_path: Path) -> None:
    home = variant(hsm_home, tmp_path)
    pin_file = home / "secrets" / "sealcard-issuer.user-pin"
    assert pin_file.exists()
    pin_file.chmod(0o644)
    checks = doctor(home, expect=1)
    assert checks["token (issuer)"]["status"] == "fail"
    assert "0600" in checks["token (issuer)"]["detail"]
    assert "PIN" in checks["token (issuer)"]["fix"]


def test_missing_pkcs11_module(hsm_home: Path, tmp_path: Path) -> None:
    module = str(tmp_path / "libvendor-pkcs11.so")
    checks = doctor(variant(hsm_home, tmp_path, module=module), expect=1)
    assert checks["pkcs11 module (issuer)"]["status"] == "fail"
    assert module in checks["pkcs11 module (issuer)"]["detail"]
    assert "softhsm2" in checks["pkcs11 module (issuer)"]["fix"]
    assert checks["token (issuer)"]["status"] == "skip"
