"""The tables of docs/cli.md, read for the tests that hold every command to them.

docs/cli.md is the one place the conventions are written; the tests read its tables
instead of keeping a copy, so a new shared option is added there once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CLI_DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
_CODE = re.compile(r"`([^`]+)`")


@dataclass(frozen=True)
class SharedOption:
    """One row of docs/cli.md's option table."""

    name: str
    short: str | None
    envvars: tuple[str, ...]
    """The environment column: one variable, or one per command group (`--home`: the
    issuer's home, or the provider's, bureau's, mailer's, shipper's own)."""
    takes: str

    def envvar_for(self, command_path: str) -> str | None:
        """The variable a command falls back to: the one naming its group when the row has
        several (SEALCARD_BUREAU_HOME for `bureau ...`), else the first."""
        group = command_path.split(" ", 1)[0].upper()
        own = [e for e in self.envvars if f"_{group}_" in e]
        if own:
            return own[0]
        return self.envvars[0] if self.envvars else None


def _section(heading: str) -> list[str]:
    lines = CLI_DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start:end]


def _tables(heading: str) -> list[list[list[str]]]:
    """The markdown tables of a section, each a list of rows of cells (header and rule cut)."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*_section(heading), ""]:
        if line.startswith("|"):
            current.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif current:
            tables.append(current[2:])
            current = []
    return tables


def _code(cell: str) -> list[str]:
    return _CODE.findall(cell)


def shared_options() -> dict[str, SharedOption]:
    """The option table of docs/cli.md, by long name."""
    table = _tables("## Options")[0]
    out: dict[str, SharedOption] = {}
    for row in table:
        name = _code(row[0])[0]
        short = _code(row[1])
        env = _code(row[2])
        out[name] = SharedOption(name, short[0] if short else None, tuple(env), row[3])
    return out


def forbidden_names() -> dict[str, str]:
    """Option names no command may use -> the name to use instead."""
    table = _tables("## Options")[1]
    out: dict[str, str] = {}
    for row in table:
        for name in _code(row[0]):
            out[name] = row[1]
    return out


def json_exempt_commands() -> set[str]:
    """Commands docs/cli.md lists as taking no --json."""
    return {_code(row[0])[0] for row in _tables("## `--json`")[0]}


def exit_codes() -> dict[str, int]:
    """Exit code names -> numbers, as docs/cli.md defines them."""
    return {row[1]: int(row[0]) for row in _tables("## Exit codes")[0]}
