"""The host's constants agree with the applet's Constants.java and with docs/apdu.md.

Three sources, one contract: every prefixed name documented in docs/apdu.md
must exist in host/sealcard/card/constants.py with the documented value;
every name both code files define must have the same value on both sides;
every contract-prefixed name the applet defines must exist on the host too;
and every name of the step A part of apdu.md (before "Personalization and
use") must exist in Constants.java (later parts: once the applet has them).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sealcard.card import constants

ROOT = Path(__file__).resolve().parents[2]
JAVA = ROOT / "applet/src/main/java/sealcard/applet/Constants.java"
APDU_MD = ROOT / "docs/apdu.md"

CONTRACT_PREFIXES = (
    "INS_",
    "KEY_",
    "SERIAL_",
    "CERT_",
    "DO_",
    "TAG_",
    "STATE_",
    "CAP_",
    "SW_",
    "CLA_",
    "MAX_",
)
JAVA_LINE = re.compile(
    r"^\s*(?:public\s+)?static\s+final\s+(byte|short)\s+([A-Z][A-Z0-9_]*)\s*=\s*"
    r"(?:\(\s*(?:byte|short)\s*\)\s*)?(-?(?:0[xX][0-9A-Fa-f]+|\d+))\s*;"
)
WIDTH_MASK = {"byte": 0xFF, "short": 0xFFFF}
HEX = r"(?:0x)?([0-9A-Fa-f]{2,4})(?:xx)?"
DOC_ROW = re.compile(r"^\|\s*`?" + HEX + r"`?\s*\|\s*`([A-Z][A-Z0-9_]+)`\s*\|")
DOC_ROW_NAME_FIRST = re.compile(r"^\|\s*`([A-Z][A-Z0-9_]+)`\s*\|\s*`" + HEX + r"`\s*\|")
STEP_A_END = "## Personalization and use"
"""Names documented before this heading (issue 2) must be in Constants.java already."""


def host_constants() -> dict[str, int]:
    """Every upper-case integer constant of constants.py (not only the contract prefixes)."""
    out: dict[str, int] = {}
    for name in dir(constants):
        value = getattr(constants, name)
        if name.isupper() and isinstance(value, int):
            out[name] = int(value)
    return out


def java_constants() -> dict[str, int]:
    out: dict[str, int] = {}
    for line in JAVA.read_text().splitlines():
        match = JAVA_LINE.match(line)
        if match:
            width, name, literal = match.groups()
            out[name] = int(literal, 0) & WIDTH_MASK[width]
    return out


def doc_constants(*, step_a_only: bool = False) -> dict[str, int]:
    """Name/value pairs from docs/apdu.md tables (`| value | NAME |` or `| NAME | value |`)."""
    out: dict[str, int] = {}
    text = APDU_MD.read_text()
    if step_a_only:
        text = text.split(STEP_A_END, 1)[0]
    for line in text.splitlines():
        match = DOC_ROW.match(line)
        if match:
            literal, name = match.groups()
        else:
            match = DOC_ROW_NAME_FIRST.match(line)
            if not match:
                continue
            name, literal = match.groups()
        digits = literal.replace(" ", "")
        value = int(digits, 16)
        if name == "SW_BYTES_REMAINING":
            value <<= 8
        if out.get(name, value) != value:
            raise AssertionError(f"docs/apdu.md gives {name} two values")
        if name.startswith(CONTRACT_PREFIXES):
            out[name] = value
    return out


def test_docs_table_is_parsed() -> None:
    documented = doc_constants()
    assert len(documented) >= 40, sorted(documented)
    assert documented["SW_CONDITIONS_NOT_SATISFIED"] == constants.SW_CONDITIONS_NOT_SATISFIED


def test_host_matches_docs() -> None:
    host = host_constants()
    wrong = {
        name: (f"{value:04X}", None if name not in host else f"{host[name]:04X}")
        for name, value in doc_constants().items()
        if host.get(name) != value
    }
    assert not wrong, f"docs/apdu.md value vs host value: {wrong}"


def test_host_and_applet_agree() -> None:
    if not JAVA.exists():
        pytest.skip(f"{JAVA.relative_to(ROOT)} does not exist yet (applet not written)")
    java = java_constants()
    assert java, f"no constant lines parsed from {JAVA}"
    host = host_constants()
    different = {
        name: (f"{java[name]:04X}", f"{host[name]:04X}")
        for name in sorted(java.keys() & host.keys())
        if java[name] != host[name]
    }
    assert not different, f"Constants.java vs constants.py: {different}"
    only_java = sorted(n for n in java if n.startswith(CONTRACT_PREFIXES) and n not in host)
    assert not only_java, f"in Constants.java but not in constants.py: {only_java}"
    missing_in_java = sorted(n for n in doc_constants(step_a_only=True) if n not in java)
    assert not missing_in_java, (
        f"documented in apdu.md but not in Constants.java: {missing_in_java}"
    )
