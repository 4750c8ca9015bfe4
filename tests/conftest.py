"""Suite-wide rules.

SEALCARD_TEST_REQUIRE_SERVICES=1 (set by tools/test.sh, so in CI) turns every skip outside
tests/device into a failure: where the script has started pcscd with simulated cards,
SoftHSM2 and PostgreSQL, a test that skips for want of one of them is a test that did not run.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

# Test doubles shared by several folders (tests/support) are imported by plain module name.
SUPPORT = Path(__file__).resolve().parent / "support"
sys.path.insert(0, str(SUPPORT))

REQUIRE_ENV = "SEALCARD_TEST_REQUIRE_SERVICES"
OPT_IN_FOLDERS = ("device",)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report = outcome.get_result()
    if os.environ.get(REQUIRE_ENV) != "1" or not report.skipped or hasattr(report, "wasxfail"):
        return
    folder = Path(str(item.fspath)).resolve().parent.name
    if folder in OPT_IN_FOLDERS:
        return
    report.outcome = "failed"
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
    report.longrepr = f"skipped although {REQUIRE_ENV}=1 (every service runs): {reason}"


@pytest.fixture(scope="session")
def service_dirs() -> Iterator[Callable[[str], Path]]:
    """New folders that the issuer HSM service's own user can reach.

    Started as root (as in CI), the service drops to its own user (sealcard-hsm), which cannot
    enter pytest's temporary folders (mode 0700): a home that hosts a running service goes
    into one of these (mode 0711: that user may pass, not list)."""
    base = Path(tempfile.mkdtemp(prefix="sealcard-svc-"))
    base.chmod(0o711)

    def make(name: str) -> Path:
        folder = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))
        folder.chmod(0o711)
        return folder

    yield make
    shutil.rmtree(base, ignore_errors=True)
