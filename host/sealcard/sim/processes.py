"""Small process helpers on Linux's /proc: is a pid alive, which pcscd runs, stop one pid."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Final

_PROC: Final = Path("/proc")
_ZOMBIE: Final = "Z"
_POLL_S: Final = 0.02


def _stat_state(pid: int) -> str | None:
    try:
        stat = (_PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # "pid (comm) S ...": the state follows the last ')' (comm may hold spaces or parens)
    return stat[stat.rfind(")") + 2 :][:1]


def _reap(pid: int) -> None:
    """Collect our own dead child so it does not linger as a zombie (no-op for others)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not count)."""
    _reap(pid)
    state = _stat_state(pid)
    return state is not None and state != _ZOMBIE


def cmdline(pid: int) -> list[str]:
    """The argv of `pid` (empty if it is gone)."""
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", errors="replace") for part in raw.split(b"\0") if part]


def find_by_name(name: str) -> list[int]:
    """Pids of live processes whose command name (/proc/PID/comm) is exactly `name`."""
    found: list[int] = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            continue
        pid = int(entry.name)
        if comm == name and pid_alive(pid):
            found.append(pid)
    return sorted(found)


def terminate(pid: int, timeout_s: float) -> bool:
    """SIGTERM `pid` and wait up to `timeout_s`; SIGKILL if it is still there.

    Returns True when it ended on SIGTERM, False when it needed SIGKILL (or is still there).
    """
    if not pid_alive(pid):
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if wait_gone(pid, timeout_s):
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    wait_gone(pid, timeout_s)
    return False


def wait_gone(pid: int, timeout_s: float) -> bool:
    """Wait until `pid` is gone; False on timeout."""
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)
    return True


def read_pid(path: Path) -> int | None:
    """The pid in a pid file, or None if the file is missing or garbled."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def write_pid(path: Path, pid: int) -> None:
    path.write_text(f"{pid}\n", encoding="ascii")
