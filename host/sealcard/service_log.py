"""The log of a long-running sealcard process (the issuer HSM service, the issuer's HTTPS API):
JSON lines for a log shipper, or text for a person at a terminal (docs/operations.md).

One JSON object a line, always with::

    time     RFC 3339 in UTC, milliseconds ("2026-11-27T10:15:02.123Z")
    level    debug, info, warning, error, critical
    logger   the Python logger ("sealcard.hsm.service", "sealcard.web.request", ...)
    event    what happened ("request", "service.start", ...; "log" for a plain message)
    message  the same line as the text format shows
    pid      the process (the HSM service's workers are processes of their own)

and, where the code that logs gives them, only the fields named in :data:`SAFE_FIELDS`
(request id, outcome, duration_ms, ...). Every other ``extra`` a log call carries is left out:
a field reaches the log only by being added to that list, so nothing secret (a key, a PIN, a
password, a session token, a request body) slips in under a new name. An exception shows its
type and where it was raised, never its message (which may quote content).

Below the layers, like ``errors.py``: the standard library only.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from datetime import UTC, datetime
from typing import Final, TextIO

LOG_FORMATS: Final = ("json", "text")
LOG_FORMAT_ENV: Final = "SEALCARD_LOG_FORMAT"
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(message)s"

#: The ``extra`` fields a log line may carry, and nothing else (see the module doc).
SAFE_FIELDS: Final = frozenset(
    {
        "request_id",  # random per request, made by the client or the API
        "op",  # an issuer HSM operation's name
        "outcome",  # ok, refused, failed (HSM service); ok, client_error, server_error (API)
        "reason",  # a refusal's or failure's typed kind
        "duration_ms",
        "pkcs11_ms",
        "pkcs11_calls",
        "cards",
        "cards_refused",
        "queue_depth",
        "workers",
        "worker_pid",
        "exit_status",
        "method",  # HTTP method
        "route",  # the route's template (/v1/users/{user_id}), never the path with its values
        "status",  # HTTP status code
        "listen",  # an address the process listens on
        "socket",
        "metrics",  # the metrics address, or null
        "uid",
        "version",
        "tls_sha256",  # the API's certificate fingerprint (public)
    }
)


def resolve_format(log_format: str | None, stream: TextIO | None = None) -> str:
    """The format asked for, else text on a terminal and JSON lines anywhere else (a file,
    a pipe, the journal)."""
    if log_format:
        return log_format.lower()
    stream = stream or sys.stderr
    try:
        return "text" if stream.isatty() else "json"
    except (AttributeError, ValueError):
        return "json"


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record: the fixed keys and the safe extra fields only."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, object] = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or "log",
            "message": record.getMessage(),
            "pid": record.process or os.getpid(),
        }
        fields = record.__dict__
        for name in sorted(SAFE_FIELDS.intersection(fields)):
            line[name] = fields[name]
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, _value, tb = record.exc_info
            line["exc_type"] = exc_type.__name__
            # where it was raised, not what it said (a message may quote a request)
            line["stack"] = "".join(traceback.format_tb(tb))
        return json.dumps(line, default=str, separators=(",", ":"), ensure_ascii=False)


def configure(level: str, log_format: str | None, stream: TextIO | None = None) -> str:
    """Send every logger's records to `stream` (stderr) in the format asked for (resolved by
    :func:`resolve_format`), at `level`; returns the format used. Replaces the root logger's
    handlers, so a second call (a test) does not double the lines."""
    stream = stream or sys.stderr
    chosen = resolve_format(log_format, stream)
    if chosen not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r}: json or text")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        JsonLinesFormatter() if chosen == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return chosen
