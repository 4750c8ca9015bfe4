"""One log line per HTTP request, and the request metrics (an ASGI middleware).

Every request gets a request id: the client's ``X-Request-Id`` when it is a plain token
(8-64 of ``A-Z a-z 0-9 . _ -``), else a new random one; the answer carries it back in
``X-Request-Id``, so a customer's support call and the log line meet. The line (logger
``sealcard.web.request``, event ``request``) has the method, the route *template*, the
status, the outcome and the time: never the path's values, the query, a header, a cookie or
the body (sessions travel in headers and cookies, passwords in bodies). It replaces uvicorn's
access log, which prints the whole path and the client's address in a format of its own.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import TYPE_CHECKING, Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from sealcard.web.metrics import ApiMetrics

log = logging.getLogger("sealcard.web.request")
REQUEST_ID_HEADER = "x-request-id"
_CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
UNMATCHED = "unmatched"


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = bytes(value).decode("latin-1")
            if _CLIENT_ID.fullmatch(text):
                return text
            break
    return secrets.token_hex(16)


def _outcome(status: int) -> str:
    if status >= 500:
        return "server_error"
    return "client_error" if status >= 400 else "ok"


class RequestObserver:
    """Wraps the app: request id, one log line, and (when on) the metrics."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        status = 500  # unless the app answers
        recorded = False

        def record() -> None:
            """Count and log the request once: as its last byte goes out (so a client that
            has its answer finds it counted), or when the app ends without an answer."""
            nonlocal recorded
            if recorded:
                return
            recorded = True
            seconds = time.perf_counter() - started
            # the router put the matched route into the scope (FastAPI's APIRoute)
            route: Any = scope.get("route")
            template = str(getattr(route, "path", "") or UNMATCHED)
            method = str(scope.get("method", "-"))
            if self.metrics is not None:
                self.metrics.in_flight.dec()
                self.metrics.requests.labels(method, template, str(status)).inc()
                self.metrics.latency.labels(method, template).observe(seconds)
            log.log(
                logging.WARNING if status >= 500 else logging.INFO,
                "%s %s %d %.1f ms",
                method,
                template,
                status,
                seconds * 1000,
                extra={
                    "event": "request",
                    "request_id": request_id,
                    "method": method,
                    "route": template,
                    "status": status,
                    "outcome": _outcome(status),
                    "duration_ms": round(seconds * 1000, 3),
                },
            )

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message).append("X-Request-Id", request_id)
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                record()
            await send(message)

        if self.metrics is not None:
            self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            record()
