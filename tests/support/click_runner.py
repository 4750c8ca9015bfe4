"""click's test runner with stdout and stderr kept apart, on every click pyproject.toml allows.

click 8.2 captures stderr apart by default (and dropped the `mix_stderr` switch); click 8.1, the
floor, mixes it into stdout unless told not to, and then `result.stderr` raises. Tests that
check the one `error:` line and the JSON separately take their runner from here.
"""

from __future__ import annotations

import inspect

from click.testing import CliRunner


def separate_runner() -> CliRunner:
    """A CliRunner whose result has `stdout` and `stderr` apart."""
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:  # click < 8.2
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg, unused-ignore]
    return CliRunner()
