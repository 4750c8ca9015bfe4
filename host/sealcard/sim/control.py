"""Client of the card JVM's control socket: one command line out, one answer line back."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Final

from sealcard.sim.errors import SimulatorError, SimulatorNotRunningError

DEFAULT_TIMEOUT_S: Final = 15.0
_MAX_ANSWER: Final = 1 << 20
_OK: Final = "ok"
_ERROR: Final = "error"


def send_command(path: Path, command: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
    """Send `command` ("status", "reset-blank N", "tear N MS", "stop"); return what follows "ok".

    Raises SimulatorNotRunningError when nothing listens on `path`, SimulatorError when the
    simulator answers "error ..." or the answer is cut short.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise SimulatorNotRunningError(
                f"no simulator listens on {path} ({exc.strerror})"
            ) from exc
        try:
            sock.sendall(command.encode("ascii") + b"\n")
            answer = _read_line(sock)
        except OSError as exc:
            raise SimulatorError(f"control command {command!r} failed: {exc}") from exc
    if answer == _OK:
        return ""
    if answer.startswith(_OK + " "):
        return answer[len(_OK) + 1 :]
    if answer.startswith(_ERROR):
        raise SimulatorError(f"simulator refused {command!r}: {answer[len(_ERROR) :].strip()}")
    raise SimulatorError(f"unexpected answer to {command!r}: {answer!r}")


def _read_line(sock: socket.socket) -> str:
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > _MAX_ANSWER:
            raise SimulatorError("control answer too long")
    return data.decode("utf-8").strip()
