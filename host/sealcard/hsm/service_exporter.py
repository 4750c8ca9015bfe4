"""The issuer HSM service's counters as Prometheus metrics (`issuer hsm serve --metrics`).

Why one collector in the main process and not prometheus-client's multiprocess mode: the
workers already send the main process an outcome with every answer (cards sealed, refusals,
their PKCS#11 calls in histogram buckets), and the main process keeps the only counters
(:class:`~sealcard.hsm.service_metrics.ServiceMetrics`). So the numbers are whole without
files shared between processes: no PROMETHEUS_MULTIPROC_DIR to create, clean or protect, no
mmap'd files of a dead worker to merge, and the processes that hold the seed write nothing
anywhere and never import prometheus-client. The cost on the request path stays what it was
before metrics: a few additions under a lock; the text is made only when Prometheus scrapes.

Metric names and labels are listed in docs/operations.md. Every typed refusal kind is
exported from the start with 0, so an alert on ``rate(...)`` works before the first one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from sealcard.hsm import protocol
from sealcard.hsm.issuer_core import WORKER_OPS
from sealcard.hsm.service_metrics import Buckets, ServiceMetrics

if TYPE_CHECKING:
    from sealcard.metrics_http import MetricsServer

PREFIX = "sealcard_hsm"
REQUEST_REFUSALS = (
    protocol.REFUSED_MALFORMED,
    protocol.REFUSED_VERSION,
    protocol.REFUSED_UNSIGNED,
    protocol.REFUSED_BAD_SIGNATURE,
    protocol.REFUSED_STALE,
    protocol.REFUSED_REPLAY,
    protocol.REFUSED_UNDECRYPTABLE,
    protocol.REFUSED_UNKNOWN_OP,
)
CARD_REFUSALS = (
    protocol.CARD_MALFORMED,
    protocol.CARD_UNKNOWN_MAILER,
    protocol.CARD_BAD_DEVICE_KEY,
)
OPS = (*sorted(WORKER_OPS), protocol.OP_SERVICE_KEY)
OUTCOMES = ("ok", "refused", "failed")


def _histogram(
    name: str, doc: str, label: str, series: dict[str, Buckets]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=[label])
    for value, buckets in sorted(series.items()):
        cumulative, running = [], 0
        for bound, count in zip((*buckets.bounds, float("inf")), buckets.counts, strict=True):
            running += count
            cumulative.append(("+Inf" if bound == float("inf") else repr(bound), running))
        family.add_metric([value], cumulative, buckets.total)
    return family


class ServiceCollector:
    """Reads :meth:`ServiceMetrics.snapshot` at every scrape."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        s = self.metrics.snapshot()
        requests = CounterMetricFamily(
            f"{PREFIX}_requests", "Requests answered, by operation and outcome.",
            labels=["op", "outcome"],
        )  # fmt: skip
        outcomes: dict[tuple[str, str], int] = {(op, o): 0 for op in OPS for o in OUTCOMES}
        outcomes.update(s["outcomes"])
        for (op, outcome), count in sorted(outcomes.items()):
            requests.add_metric([op, outcome], count)
        yield requests

        refusals = CounterMetricFamily(
            f"{PREFIX}_request_refusals", "Requests refused, by typed reason.", labels=["reason"]
        )
        for reason, count in sorted(({r: 0 for r in REQUEST_REFUSALS} | s["refusals"]).items()):
            refusals.add_metric([reason], count)
        yield refusals

        failures = CounterMetricFamily(
            f"{PREFIX}_request_failures",
            "Requests that failed in the service (a bug or the token), by reason.",
            labels=["reason"],
        )
        for reason, count in sorted(s["failures"].items()):
            failures.add_metric([reason], count)
        yield failures

        yield CounterMetricFamily(
            f"{PREFIX}_cards_sealed",
            "Cards sealed (blob made and signed).",
            value=s["cards_sealed"],
        )
        card_refusals = CounterMetricFamily(
            f"{PREFIX}_card_refusals",
            "Cards of a seal-batch refused alone (the order is held), by typed reason.",
            labels=["reason"],
        )
        cards = {r: 0 for r in CARD_REFUSALS} | s["card_refusals"]
        for reason, count in sorted(cards.items()):
            card_refusals.add_metric([reason], count)
        yield card_refusals

        yield _histogram(
            f"{PREFIX}_request_duration_seconds",
            "Time from a request's arrival to its answer, by operation.",
            "op",
            s["request_seconds"],
        )
        yield _histogram(
            f"{PREFIX}_pkcs11_call_duration_seconds",
            "Time of each PKCS#11 call of the workers, by operation.",
            "operation",
            s["pkcs11_ops"],
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_queue_depth",
            "Requests waiting for a free worker now.",
            value=s["queue_depth"],
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_requests_in_flight",
            "Requests being checked, waiting or carried out now.",
            value=s["in_flight"],
        )
        yield GaugeMetricFamily(f"{PREFIX}_workers", "Worker processes alive.", value=s["workers"])


def start_exporter(metrics: ServiceMetrics, address: str) -> MetricsServer:
    """Serve the service's metrics (and the Python process collectors) on `address`."""
    from prometheus_client import PLATFORM_COLLECTOR, PROCESS_COLLECTOR

    from sealcard.metrics_http import MetricsServer

    registry = CollectorRegistry(auto_describe=True)
    registry.register(ServiceCollector(metrics))
    registry.register(PROCESS_COLLECTOR)
    registry.register(PLATFORM_COLLECTOR)
    return MetricsServer.start(address, registry)
