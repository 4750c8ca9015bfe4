"""`sealcard` starts without what a command does not need (issue 12, "a fast CLI").

The root group lists its groups from a table (cli/main.py's GROUPS, cli/lazy.py) and imports a
group's module only when that group runs; the command modules import pyscard, cryptography,
the records and the HSM inside the commands that use them. Here: the table says what each group
says of itself and lists every command the package defines, and the installed executable's
`--help`, `--version` and every group's `--help` import none of the heavy modules (read from
Python's own import log, PYTHONPROFILEIMPORTTIME, so no timing is asserted; bench/cli_start.py
times it).
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import click
import pytest
from cli_failures import child_env, sealcard_executable

import sealcard.cli
from sealcard.cli.lazy import LazyGroup
from sealcard.cli.main import GROUPS, cli

HEAVY_PACKAGES = (
    "Crypto",
    "argon2",
    "asn1crypto",
    "coincurve",
    "cryptography",
    "fastapi",
    "httpx",
    "jinja2",
    "pkcs11",
    "psycopg",
    "reportlab",
    "shamir_mnemonic",
    "smartcard",
    "sqlite3",
    "starlette",
    "uvicorn",
)
"""Third-party (and stdlib) packages no --help may import."""

HEAVY_SEALCARD = (
    "sealcard.card.session",
    "sealcard.crypto",
    "sealcard.formats",
    "sealcard.hsm.",  # sealcard.hsm.config (names, defaults) is light; the rest is PKCS#11
    "sealcard.issuer.audit",
    "sealcard.issuer.db",
    "sealcard.issuer.records",
    "sealcard.parties.",  # but parties.provider_names: see ALLOWED
    "sealcard.transport.pcsc",
    "sealcard.web",
)
ALLOWED = (
    "sealcard.formats",  # the package alone (an empty __init__)
    "sealcard.formats.roles",
    "sealcard.hsm.config",
    "sealcard.parties.party_names",
    "sealcard.parties.provider_names",
)


def test_the_table_says_what_each_group_says_of_itself() -> None:
    for name, entry in GROUPS.items():
        command = entry.load()
        assert command.name == name, f"{entry.target} is named {command.name!r}, not {name!r}"
        assert entry.short_help == command.get_short_help_str(limit=10_000), (
            f"GROUPS[{name!r}]'s help is not the first sentence of {entry.target}'s docstring"
        )


@pytest.mark.parametrize("width", [40, 80, 120])
def test_the_root_help_lists_the_groups_as_click_would_with_every_module_imported(
    width: int,
) -> None:
    """`sealcard --help` from the table, and from the real groups, are the same text."""
    lazy = LazyGroup(name="sealcard", lazy=GROUPS)
    eager = click.Group(name="sealcard", commands=[entry.load() for entry in GROUPS.values()])

    def listing(group: click.Group) -> str:
        formatter = click.HelpFormatter(width=width)
        group.format_commands(click.Context(group), formatter)
        return formatter.getvalue()

    assert listing(lazy) == listing(eager)
    assert lazy.commands == {}, "the lazy listing imported a group"
    for name in GROUPS:
        assert name in listing(lazy)


def _defined_commands() -> Iterator[tuple[str, click.Command]]:
    """Every click command that a module of sealcard.cli defines at its top level."""
    for info in pkgutil.iter_modules(sealcard.cli.__path__, "sealcard.cli."):
        module = importlib.import_module(info.name)
        for attribute, value in vars(module).items():
            if isinstance(value, click.Command) and value is not cli:
                yield f"{info.name}:{attribute}", value


def _reachable(group: click.Group) -> Iterator[click.Command]:
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None, f"{name} is listed but not found"
        yield command
        if isinstance(command, click.Group):
            yield from _reachable(command)


def test_every_command_the_package_defines_is_reachable_from_the_table() -> None:
    """A new group module without its line in GROUPS (or a command nobody registered) fails."""
    reachable = {id(command) for command in _reachable(cli)}
    orphans = [where for where, command in _defined_commands() if id(command) not in reachable]
    assert orphans == [], f"defined but not reachable from `sealcard` (add to GROUPS): {orphans}"
    top_level = set(cli.list_commands(click.Context(cli)))
    assert top_level == set(GROUPS), "the root group has commands outside its table"


def _groups(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if isinstance(command, click.Group):
            yield (*path, name)
            yield from _groups(command, (*path, name))


def _imported(args: tuple[str, ...]) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run the installed executable; the modules Python's import log says it imported."""
    result = subprocess.run(
        [sealcard_executable(), *args],
        env=child_env({"PYTHONPROFILEIMPORTTIME": "1"}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }
    modules.discard("package")  # the log's header line
    return result, modules


def _within(module: str, prefix: str) -> bool:
    """ "a.b" names a.b and below it; "a.b." only what is below a.b."""
    if prefix.endswith("."):
        return module.startswith(prefix)
    return module == prefix or module.startswith(prefix + ".")


def _heavy(modules: set[str]) -> list[str]:
    return sorted(
        module
        for module in modules
        if module not in ALLOWED
        and (
            module.split(".")[0] in HEAVY_PACKAGES
            or any(_within(module, prefix) for prefix in HEAVY_SEALCARD)
        )
    )


def test_help_and_version_import_none_of_the_heavy_modules() -> None:
    lines = [("--help",), ("--version",), *((*path, "--help") for path in _groups(cli))]
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(_imported, lines))
    for args, (result, modules) in zip(lines, runs, strict=True):
        shown = "sealcard " + " ".join(args)
        assert result.returncode == 0, (shown, result.stderr[-2000:])
        assert {"click", "sealcard.cli.main"} <= modules, f"{shown}: no import log read"
        assert _heavy(modules) == [], f"{shown} imports {_heavy(modules)}"


def test_a_command_that_talks_to_a_card_still_imports_what_it_needs() -> None:
    """The check above reads the log right: a real command's run shows pyscard in it."""
    result, modules = _imported(("readers", "--json"))
    assert result.returncode in (0, 3), result.stderr[-2000:]  # 3: no pcscd on this machine
    assert "smartcard" in modules and "sealcard.transport.pcsc" in modules
