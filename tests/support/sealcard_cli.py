"""Run the installed `sealcard` executable as a user would, on this work tree's code.

The executable's own interpreter imports sealcard from PYTHONPATH first, so this tree's host/
goes in front (pytest's pythonpath setting reaches only the test process itself).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

HOST = Path(__file__).resolve().parents[2] / "host"
TIMEOUT_S = 300


def sealcard_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HOST), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def run_sealcard(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`sealcard ARGS...` with its exit code, stdout and stderr."""
    executable = shutil.which("sealcard")
    assert executable is not None, "the sealcard executable is not installed (pip install -e .)"
    return subprocess.run(
        [executable, *args],
        env=env or sealcard_env(),
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def run_json(*args: str, expect: int = 0, **kwargs: Any) -> dict[str, Any]:
    """`sealcard ARGS... --json`: the one JSON object it prints, after checking the exit code."""
    result = run_sealcard(*args, "--json", **kwargs)
    assert result.returncode == expect, (result.returncode, result.stdout, result.stderr)
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload
