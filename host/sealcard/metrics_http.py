"""The opt-in Prometheus endpoint of a long-running sealcard process (`--metrics ADDR:PORT`).

A small HTTP server of its own in a daemon thread, serving ``GET /metrics`` in Prometheus's
text format from one prometheus-client registry, and nothing else (404). It is separate from
the issuer's HTTPS API on purpose: off by default, on loopback unless told otherwise (a port
alone means ``127.0.0.1:PORT``), no TLS and no sign-in, so it belongs on a management network
that only the Prometheus server reaches (docs/operations.md).

prometheus-client is imported only when a server is started, never when the CLI loads.
Below the layers, like ``errors.py``.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Final

from sealcard.errors import ConfigurationError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

METRICS_ENV: Final = "SEALCARD_METRICS"
DEFAULT_METRICS_HOST: Final = "127.0.0.1"
METRICS_PATH: Final = "/metrics"


def parse_metrics_address(value: str) -> tuple[str, int]:
    """``PORT`` (loopback), ``HOST:PORT`` or ``[IPv6]:PORT`` (port 0: any free one, as the
    start line of the log then tells); ConfigurationError otherwise."""
    text = value.strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = DEFAULT_METRICS_HOST, text
    host = host.strip("[]")
    if not port.isdigit() or not 0 <= int(port) < 65536 or not host:
        raise ConfigurationError(
            f"metrics address {value!r} is not PORT or HOST:PORT (e.g. 9464 or 127.0.0.1:9464)"
        )
    return host, int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    registry: CollectorRegistry


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "sealcard-metrics"
    sys_version = ""

    def do_GET(self) -> None:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if self.path.split("?", 1)[0] != METRICS_PATH:
            self.send_error(404, "only /metrics here")
            return
        body = generate_latest(self.server.registry)
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged: every 15 s a line says nothing (and raw lines would break
        the JSON-lines log)."""


class MetricsServer:
    """A running metrics endpoint; :meth:`close` stops it."""

    def __init__(self, server: _Server, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        host, port = server.server_address[:2]
        self.host, self.port = str(host), int(port)

    @property
    def address(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"{shown}:{self.port}"

    @classmethod
    def start(cls, address: str, registry: CollectorRegistry) -> MetricsServer:
        """Listen on `address` (see :func:`parse_metrics_address`) and serve `registry`;
        ConfigurationError naming the address if it cannot be bound."""
        host, port = parse_metrics_address(address)
        server_class = _Server6 if ":" in host else _Server
        try:
            server = server_class((host, port), _Handler)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot serve metrics on {address}: {exc.strerror or exc}"
            ) from None
        server.registry = registry
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True,
            name="metrics-http",
        )  # fmt: skip
        thread.start()
        return cls(server, thread)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
