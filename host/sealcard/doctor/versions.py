"""Versions of sealcard, Python, the Python packages it runs on and the programs around it."""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from importlib import metadata
from typing import Final

from sealcard import __version__

PACKAGES: Final = (
    "pyscard",
    "cryptography",
    "python-pkcs11",
    "coincurve",
    "asn1crypto",
    "click",
    "shamir-mnemonic",
    "pycryptodome",
    "tomli-w",
    "reportlab",
    "psycopg",
)
"""Distributions whose version is reported (importlib.metadata: nothing is imported)."""

# program -> (the command that prints its version, where the version is: stdout or stderr)
TOOLS: Final = {
    "pcscd": ("pcscd", "--version"),
    "softhsm2": ("softhsm2-util", "--version"),
    "java": ("java", "-version"),
    "openssl": ("openssl", "version"),
}
_VERSION = re.compile(r"\d+(?:\.\d+)+")
_TOOL_TIMEOUT_S: Final = 5.0
SBIN: Final = ("/usr/sbin", "/sbin", "/usr/local/sbin")


def find_program(name: str) -> str | None:
    """A program on PATH, or in the sbin folders a non-root PATH often lacks (pcscd)."""
    found = shutil.which(name)
    if found is None:
        for folder in SBIN:
            found = shutil.which(name, path=folder)
            if found is not None:
                break
    return found


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def tool_version(argv: tuple[str, ...]) -> str | None:
    """The first dotted number a program prints about itself; None if it is not installed."""
    program = find_program(argv[0])
    if program is None:
        return None
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [program, *argv[1:]],
            capture_output=True,
            text=True,
            timeout=_TOOL_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    match = _VERSION.search(done.stdout + done.stderr)
    return match.group(0) if match else "unknown"


def versions() -> dict[str, str | None]:
    """sealcard, Python, every package of PACKAGES and every program of TOOLS (None: absent)."""
    found: dict[str, str | None] = {
        "sealcard": __version__,
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
    }
    found.update({name: package_version(name) for name in PACKAGES})
    found.update({name: tool_version(argv) for name, argv in TOOLS.items()})
    return found
