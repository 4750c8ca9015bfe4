"""Start and stop the issuer HSM service as a subprocess, and a proxy that records and rewrites
what crosses its socket (shared by the hsm tests)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sealcard.hsm import protocol
from sealcard.hsm.config import SOFTHSM_MODULE_CANDIDATES

SERVICE_START_TIMEOUT_S = 20.0


def softhsm_available() -> bool:
    return any(Path(p).exists() for p in SOFTHSM_MODULE_CANDIDATES) or bool(
        os.environ.get("SEALCARD_PKCS11_MODULE")
    )


def start_service(home: Path, socket_path: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sealcard.hsm.issuer_service",
            "--home",
            str(home),
            "--log-level",
            "WARNING",
        ],
    )
    deadline = time.monotonic() + SERVICE_START_TIMEOUT_S
    while not accepts_connections(socket_path):
        if proc.poll() is not None:
            raise RuntimeError(f"issuer HSM service exited with {proc.returncode}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("issuer HSM service did not start")
        time.sleep(0.05)
    return proc


def accepts_connections(socket_path: Path) -> bool:
    """Whether the service listens: its socket file appears at bind(), a moment before
    listen(), and a connect in between is refused (a restart test used to fail so)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(socket_path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def stop_service(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class ServiceProcess:
    """The issuer HSM service of a test home; restartable (a new service key each start)."""

    def __init__(self, home: Path, socket_path: Path) -> None:
        self.home = home
        self.socket_path = socket_path
        self.proc = start_service(home, socket_path)

    def restart(self) -> None:
        stop_service(self.proc)
        deadline = time.monotonic() + SERVICE_START_TIMEOUT_S
        while self.socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # the service removes its socket on the way out
        self.proc = start_service(self.home, self.socket_path)

    def stop(self) -> None:
        stop_service(self.proc)


Rewrite = Callable[[bytes], bytes]


class FrameProxy:
    """A Unix socket between a client and the service: records every frame both ways and may
    rewrite them (what an attacker on the socket path could do)."""

    def __init__(
        self,
        target: Path,
        on_request: Rewrite | None = None,
        on_response: Rewrite | None = None,
    ) -> None:
        self.target = target
        self.on_request = on_request
        self.on_response = on_response
        self.requests: list[bytes] = []
        self.responses: list[bytes] = []
        self.connections = 0
        self._dir = tempfile.mkdtemp(prefix="scproxy-")  # short: AF_UNIX paths are <108 bytes
        self.path = Path(self._dir) / "proxy.sock"
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.path))
        self._listener.listen(4)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(str(self.target))
        with conn, upstream:
            while True:
                try:
                    request = protocol.recv_frame(conn)
                except (ConnectionError, OSError):
                    return
                self.requests.append(request)
                protocol.send_frame(
                    upstream, self.on_request(request) if self.on_request else request
                )
                try:
                    response = protocol.recv_frame(upstream)
                except (ConnectionError, OSError):
                    return  # the service dropped the connection: drop the client's too
                self.responses.append(response)
                protocol.send_frame(
                    conn, self.on_response(response) if self.on_response else response
                )

    def close(self) -> None:
        self._listener.close()
        shutil.rmtree(self._dir, ignore_errors=True)
