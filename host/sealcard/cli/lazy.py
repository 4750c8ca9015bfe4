"""A click group that imports a sub-command's module only when that command is used.

Importing every party's module to start `sealcard` cost more than the command itself
(pyscard, cryptography, the issuer's records, PKCS#11): most of 0.5 s. A `LazyGroup` is
given a table, one line per sub-command: its name, where it is defined
("sealcard.cli.card_cmd:card") and the short help `GROUP --help` lists for it, so that
listing the commands imports nothing and running one imports just its module.

The short help in the table must be the first sentence of the command's docstring (what
click itself would show); tests/unit/test_cli_start.py checks every entry against the real
command, and that every command defined in `sealcard.cli` is reachable from the table.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click
from click.utils import make_default_short_help


@dataclass(frozen=True)
class LazyCommand:
    """Where a sub-command is defined and the short help its group lists for it."""

    target: str
    """"module:attribute", e.g. "sealcard.cli.card_cmd:card"."""
    short_help: str
    """The first sentence of the command's docstring, as `GROUP --help` shows it."""

    def load(self) -> click.Command:
        module_name, _, attribute = self.target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.target} is not a click command")
        return command


class LazyGroup(click.Group):
    """A group whose sub-commands in `lazy` are imported when first resolved.

    `list_commands` and `get_command` see them like any other command (so completion,
    `--help` of a sub-command and every test that walks the tree find them); the group's own
    `--help` takes their short help from the table instead of importing them.
    """

    def __init__(
        self, *args: Any, lazy: Mapping[str, LazyCommand] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, LazyCommand] = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(self.lazy[cmd_name].load(), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing of sub-commands, with a not yet imported one's help from the table."""
        shown = [
            name
            for name in self.list_commands(ctx)
            if name not in self.commands or not self.commands[name].hidden
        ]
        if not shown:
            return
        limit = formatter.width - 6 - max(len(name) for name in shown)  # as click's own
        with formatter.section("Commands"):
            formatter.write_dl([(name, self._short_help(name, limit)) for name in shown])

    def _short_help(self, name: str, limit: int) -> str:
        loaded = self.commands.get(name)
        if loaded is not None:
            return loaded.get_short_help_str(limit)
        return make_default_short_help(self.lazy[name].short_help, limit)
