"""The one place where the issuer HSM service counts and logs what it does.

Every request is logged once, after it is answered, by :meth:`ServiceMetrics.request_done`
on the logger ``sealcard.hsm.service``: the request id, the op, the outcome, the refusal
reason, the number of cards and the time, as structured ``extra`` fields (never any content:
no name, address, key, PIN or body). The same call updates the counters: cards sealed, cards
refused by reason, requests refused by reason, PKCS#11 time and calls, and the queue depth
(requests waiting for a free worker). A JSON-lines formatter or a Prometheus exporter (the
`operations` branch) reads these fields and :meth:`snapshot`; nothing else needs to change.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("sealcard.hsm.service")

STATUS_NAMES = {0: "ok", 1: "refused", 2: "failed"}


@dataclass
class RequestOutcome:
    """What a worker (or the verifier) reports about one answered request."""

    status: int
    reason: str | None = None
    cards: int = 0  # cards sealed
    card_refusals: dict[str, int] = field(default_factory=dict)  # cards refused, by reason
    pkcs11_seconds: float = 0.0
    pkcs11_calls: int = 0


class ServiceMetrics:
    """Counters of one service process (thread-safe), and the request log line."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()  # by op
        self.refusals: Counter[str] = Counter()  # requests refused, by reason
        self.failures: Counter[str] = Counter()  # requests failed, by reason
        self.cards_sealed = 0
        self.card_refusals: Counter[str] = Counter()
        self.pkcs11_seconds = 0.0
        self.pkcs11_calls = 0
        self.queue_depth = 0  # requests waiting for a worker now
        self.queue_depth_max = 0

    def waiting(self, delta: int) -> None:
        """A request starts (+1) or stops (-1) waiting for a free worker."""
        with self._lock:
            self.queue_depth += delta
            self.queue_depth_max = max(self.queue_depth_max, self.queue_depth)

    def request_done(
        self, request_id: bytes, op: str, outcome: RequestOutcome, seconds: float
    ) -> None:
        """Count an answered request and log it (request id, never its content)."""
        status = STATUS_NAMES.get(outcome.status, str(outcome.status))
        with self._lock:
            self.requests[op] += 1
            if outcome.status == 1:
                self.refusals[outcome.reason or "unknown"] += 1
            elif outcome.status == 2:
                self.failures[outcome.reason or "unknown"] += 1
            self.cards_sealed += outcome.cards
            self.card_refusals.update(outcome.card_refusals)
            self.pkcs11_seconds += outcome.pkcs11_seconds
            self.pkcs11_calls += outcome.pkcs11_calls
            depth = self.queue_depth
        extra = {
            "request_id": request_id.hex(),
            "op": op,
            "status": status,
            "reason": outcome.reason,
            "cards": outcome.cards,
            "cards_refused": sum(outcome.card_refusals.values()),
            "duration_ms": round(seconds * 1000, 3),
            "pkcs11_ms": round(outcome.pkcs11_seconds * 1000, 3),
            "queue_depth": depth,
        }
        level = logging.INFO if outcome.status == 0 else logging.WARNING
        log.log(
            level,
            "request %s op=%s status=%s%s cards=%d refused=%d %.1f ms",
            extra["request_id"],
            op,
            status,
            f" reason={outcome.reason}" if outcome.reason else "",
            outcome.cards,
            extra["cards_refused"],
            seconds * 1000,
            extra=extra,
        )

    def snapshot(self) -> dict[str, Any]:
        """Every counter, for an exporter or a test."""
        with self._lock:
            return {
                "requests": dict(self.requests),
                "refusals": dict(self.refusals),
                "failures": dict(self.failures),
                "cards_sealed": self.cards_sealed,
                "card_refusals": dict(self.card_refusals),
                "pkcs11_seconds": self.pkcs11_seconds,
                "pkcs11_calls": self.pkcs11_calls,
                "queue_depth": self.queue_depth,
                "queue_depth_max": self.queue_depth_max,
            }
