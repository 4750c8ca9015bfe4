"""The issuer API's Prometheus metrics (`issuer serve --metrics`), in a registry of its own.

Made only when metrics are asked for (prometheus-client is imported here and nowhere the CLI
loads at start). Routes are labelled by their template (``/v1/orders/{order_id}``), never by
the path with its values, and a path no route matches is ``unmatched``: a scanner trying
thousands of paths adds one series, not thousands. Names and labels: docs/operations.md.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "sealcard_api"
#: seconds: a health check is a millisecond, a sign-in (Argon2id) tens of milliseconds, an
#: activation (HSM round trip) up to a second, a bulk intake file several seconds
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ApiMetrics:
    """Counters and histograms of one API process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            f"{PREFIX}_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by method and route.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            f"{PREFIX}_requests_in_flight", "Requests being answered now.", registry=self.registry
        )
        self.sign_in_failures = Counter(
            f"{PREFIX}_sign_in_failures",
            "Refused sign-ins (API and console), by reason (wrong_credentials, rate_limited, ...).",
            ["reason"],
            registry=self.registry,
        )
        self.activations = Counter(
            f"{PREFIX}_activations",
            "Card activations: result sealed_blob_sent, or the refusal's code.",
            ["result"],
            registry=self.registry,
        )
        self.activation_reports = Counter(
            f"{PREFIX}_activation_reports",
            "The customer's computer's report after an activation: did the card take the blob.",
            ["personalized"],
            registry=self.registry,
        )
