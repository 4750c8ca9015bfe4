"""The one place where the issuer HSM service counts and logs what it does.

Every request is logged once, after it is answered, by :meth:`ServiceMetrics.request_done`
on the logger ``sealcard.hsm.service``: the request id, the op, the outcome, the refusal
reason, the number of cards and the time, as structured ``extra`` fields (never any content:
no name, address, key, PIN or body; :mod:`sealcard.service_log` writes them as JSON lines).
The same call updates the counters: requests by op and outcome, cards sealed, cards refused
by reason, requests refused by reason, request time and PKCS#11 time per operation (as
histogram buckets), and the queue depth (requests waiting for a free worker).

The workers are processes of their own: each reports its PKCS#11 calls with every answer
(:class:`RequestOutcome`, already bucketed), and only the main process keeps these counters,
so the Prometheus exporter (:mod:`sealcard.hsm.service_exporter`) reads one process's memory
and the workers never touch prometheus-client.
"""

from __future__ import annotations

import logging
import threading
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

log = logging.getLogger("sealcard.hsm.service")

STATUS_NAMES = {0: "ok", 1: "refused", 2: "failed"}

#: Upper bounds (seconds) of the request-time buckets: a ping is under a millisecond, a
#: seal-batch of a few hundred cards with PIN letters a second or more.
REQUEST_BUCKETS: Final = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
#: Upper bounds (seconds) of the PKCS#11-call buckets: SoftHSM2 answers in tens of
#: microseconds to a few milliseconds, a network HSM in milliseconds.
PKCS11_BUCKETS: Final = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
)  # fmt: skip


class Buckets:
    """Counts of observations per bucket (the last one is +Inf) and their sum: a histogram
    that crosses a process boundary as a short list."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1  # `le` means <=
        self.total += seconds

    def add(self, other: Buckets) -> None:
        for i, count in enumerate(other.counts):
            self.counts[i] += count
        self.total += other.total

    @property
    def count(self) -> int:
        return sum(self.counts)

    def encode(self) -> list[float]:
        """[count per bucket..., sum]: what a worker sends with its answer."""
        return [*self.counts, self.total]

    @classmethod
    def decode(cls, bounds: tuple[float, ...], data: list[float]) -> Buckets:
        if len(data) != len(bounds) + 2:
            raise ValueError("bucket counts of another layout")
        out = cls(bounds)
        out.counts = [int(c) for c in data[:-1]]
        out.total = float(data[-1])
        return out

    def copy(self) -> Buckets:
        out = Buckets(self.bounds)
        out.add(self)
        return out


@dataclass
class RequestOutcome:
    """What a worker (or the verifier) reports about one answered request."""

    status: int
    reason: str | None = None
    cards: int = 0  # cards sealed
    card_refusals: dict[str, int] = field(default_factory=dict)  # cards refused, by reason
    pkcs11_seconds: float = 0.0
    pkcs11_calls: int = 0
    pkcs11_ops: dict[str, Buckets] = field(default_factory=dict)  # call times per operation


class ServiceMetrics:
    """Counters of one service process (thread-safe), and the request log line."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()  # by op
        self.outcomes: Counter[tuple[str, str]] = Counter()  # by (op, outcome)
        self.refusals: Counter[str] = Counter()  # requests refused, by reason
        self.failures: Counter[str] = Counter()  # requests failed, by reason
        self.cards_sealed = 0
        self.card_refusals: Counter[str] = Counter()
        self.pkcs11_seconds = 0.0
        self.pkcs11_calls = 0
        self.pkcs11_ops: dict[str, Buckets] = {}
        self.request_seconds: dict[str, Buckets] = {}  # by op
        self.queue_depth = 0  # requests waiting for a worker now
        self.queue_depth_max = 0
        self.in_flight = 0  # requests being checked or carried out now
        self.workers = 0  # worker processes alive

    def waiting(self, delta: int) -> None:
        """A request starts (+1) or stops (-1) waiting for a free worker."""
        with self._lock:
            self.queue_depth += delta
            self.queue_depth_max = max(self.queue_depth_max, self.queue_depth)

    def busy(self, delta: int) -> None:
        """A request arrives (+1) or is answered (-1)."""
        with self._lock:
            self.in_flight += delta

    def set_workers(self, count: int) -> None:
        with self._lock:
            self.workers = count

    def request_done(
        self, request_id: bytes, op: str, outcome: RequestOutcome, seconds: float
    ) -> None:
        """Count an answered request and log it (request id, never its content)."""
        status = STATUS_NAMES.get(outcome.status, str(outcome.status))
        with self._lock:
            self.requests[op] += 1
            self.outcomes[(op, status)] += 1
            if outcome.status == 1:
                self.refusals[outcome.reason or "unknown"] += 1
            elif outcome.status == 2:
                self.failures[outcome.reason or "unknown"] += 1
            self.cards_sealed += outcome.cards
            self.card_refusals.update(outcome.card_refusals)
            self.pkcs11_seconds += outcome.pkcs11_seconds
            self.pkcs11_calls += outcome.pkcs11_calls
            for name, buckets in outcome.pkcs11_ops.items():
                self.pkcs11_ops.setdefault(name, Buckets(PKCS11_BUCKETS)).add(buckets)
            self.request_seconds.setdefault(op, Buckets(REQUEST_BUCKETS)).observe(seconds)
            depth = self.queue_depth
        extra = {
            "event": "request",
            "request_id": request_id.hex(),
            "op": op,
            "outcome": status,
            "reason": outcome.reason,
            "cards": outcome.cards,
            "cards_refused": sum(outcome.card_refusals.values()),
            "duration_ms": round(seconds * 1000, 3),
            "pkcs11_ms": round(outcome.pkcs11_seconds * 1000, 3),
            "pkcs11_calls": outcome.pkcs11_calls,
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
        """Every counter (bucket counts copied), for an exporter or a test."""
        with self._lock:
            return {
                "requests": dict(self.requests),
                "outcomes": dict(self.outcomes),
                "refusals": dict(self.refusals),
                "failures": dict(self.failures),
                "cards_sealed": self.cards_sealed,
                "card_refusals": dict(self.card_refusals),
                "pkcs11_seconds": self.pkcs11_seconds,
                "pkcs11_calls": self.pkcs11_calls,
                "pkcs11_ops": {k: v.copy() for k, v in self.pkcs11_ops.items()},
                "request_seconds": {k: v.copy() for k, v in self.request_seconds.items()},
                "queue_depth": self.queue_depth,
                "queue_depth_max": self.queue_depth_max,
                "in_flight": self.in_flight,
                "workers": self.workers,
            }
