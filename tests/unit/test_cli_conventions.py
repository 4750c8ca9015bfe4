"""Every command's parameters against the conventions table of docs/cli.md.

Data-driven: the rules come from docs/cli.md (tests/support/conventions.py reads it) and the
commands from walking the whole click tree, so a command added by any branch is checked the
moment it is registered.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import click
import pytest
from cli_failures import leaf_commands
from conventions import exit_codes, forbidden_names, shared_options

from sealcard.cli.main import cli
from sealcard.cli.outcome import ExitCode

SECRET_WORDS = re.compile(r"pin|puk|passphrase|password|secret|seed|mnemonic")
FD_SUFFIX = "-fd"


def _options(command: click.Command) -> Iterator[click.Option]:
    for param in command.params:
        if isinstance(param, click.Option) and param.name != "help":
            yield param


def _all_options() -> Iterator[tuple[str, click.Option]]:
    """(command path, option) for every option of every command, the root group's included."""
    for option in _options(cli):
        yield "sealcard", option
    for path, command in leaf_commands(cli):
        for option in _options(command):
            yield path, option


def _long(option: click.Option) -> str:
    return next(o for o in option.opts if o.startswith("--"))


def _shorts(option: click.Option) -> list[str]:
    return [o for o in [*option.opts, *option.secondary_opts] if not o.startswith("--")]


def _takes(option: click.Option) -> str:
    """What an option takes, in docs/cli.md's words."""
    if option.is_flag:
        return "flag"
    kind = option.type
    if isinstance(kind, click.Path):
        if not kind.dir_okay:
            return "FILE"
        if not kind.file_okay:
            return "DIR"
        return "PATH"
    if _long(option).endswith(FD_SUFFIX):
        return "FD"
    return "value"


OPTIONS = sorted(
    {(path, _long(option)): option for path, option in _all_options()}.items(),
    key=lambda item: item[0],
)


@pytest.mark.parametrize(("where", "option"), OPTIONS, ids=[f"{p} {n}" for (p, n), _ in OPTIONS])
def test_option_follows_the_table(where: tuple[str, str], option: click.Option) -> None:
    path, name = where
    table = shared_options()
    assert name not in forbidden_names(), (
        f"{path}: {name} is on docs/cli.md's 'not these names' list: use {forbidden_names()[name]}"
    )
    assert not (SECRET_WORDS.search(name) and name not in table), (
        f"{path}: {name} looks like a secret; secrets come from an -fd option or a prompt "
        "(add a row to docs/cli.md if it is not a secret)"
    )
    shorts = _shorts(option)
    if name not in table:
        assert shorts == [], f"{path}: {name} has a short name; only docs/cli.md's table gives one"
        return
    row = table[name]
    assert shorts == ([row.short] if row.short else []), f"{path}: {name} short name"
    envvar = row.envvar_for(path)
    assert option.envvar == envvar, f"{path}: {name} falls back to ${envvar}"
    takes = _takes(option)
    if row.takes in ("flag", "FILE", "DIR", "FD"):
        assert takes == row.takes, f"{path}: {name} takes {takes}, docs/cli.md says {row.takes}"
    else:
        assert takes not in ("flag", "FD"), f"{path}: {name} takes {takes}, not {row.takes}"
    if row.takes == "FD":
        assert isinstance(option.type, click.IntRange) and option.type.min == 0
        assert option.metavar == "N", f"{path}: {name} shows its value as N"


def test_no_positional_arguments() -> None:
    """Files and values are named options (docs/cli.md, "Files and folders")."""
    positional = [
        f"{path} {param.name}"
        for path, command in leaf_commands(cli)
        for param in command.params
        if isinstance(param, click.Argument)
    ]
    assert positional == []


def test_short_names_are_unique_within_a_command() -> None:
    for path, command in leaf_commands(cli):
        shorts = [s for option in _options(command) for s in _shorts(option)]
        assert len(shorts) == len(set(shorts)), path


def test_every_table_row_is_used() -> None:
    """A row of docs/cli.md that no command uses is a stale row."""
    used = {_long(option) for _, option in _all_options()}
    assert sorted(set(shared_options()) - used) == []


def test_exit_codes_match_the_doc() -> None:
    assert exit_codes() == {code.name: int(code) for code in ExitCode}


def test_a_secret_option_is_caught() -> None:
    """The rules above can fail: a --pin option, a short name and a wrong env are found."""

    @click.command()
    @click.option("--pin", "-p")
    @click.option("--home", envvar="HOME_SOMEWHERE_ELSE")
    def bad(pin: str, home: str) -> None: ...

    options = {_long(o): o for o in _options(bad)}
    with pytest.raises(AssertionError, match="not these names"):
        test_option_follows_the_table(("bad", "--pin"), options["--pin"])
    with pytest.raises(AssertionError, match="falls back"):
        test_option_follows_the_table(("bad", "--home"), options["--home"])
