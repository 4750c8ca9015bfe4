"""The issuer HSM service's one place for counters and the request log line: structured
fields for a JSON-lines formatter or an exporter, never any request content."""

from __future__ import annotations

import logging

import pytest

from sealcard.hsm.service_metrics import RequestOutcome, ServiceMetrics

REQUEST_ID = bytes(range(16))


def test_a_request_is_counted_and_logged_once_with_structured_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = ServiceMetrics()
    caplog.set_level(logging.INFO, logger="sealcard.hsm.service")
    outcome = RequestOutcome(0, cards=254, card_refusals={"unknown-mailer": 2}, pkcs11_seconds=0.5)
    metrics.request_done(REQUEST_ID, "seal-batch", outcome, 0.25)
    (record,) = caplog.records
    assert record.name == "sealcard.hsm.service" and record.levelno == logging.INFO
    fields = {k: getattr(record, k) for k in ("request_id", "op", "status", "cards", "queue_depth")}
    assert fields == {
        "request_id": REQUEST_ID.hex(),
        "op": "seal-batch",
        "status": "ok",
        "cards": 254,
        "queue_depth": 0,
    }
    assert record.cards_refused == 2 and record.duration_ms == 250.0  # type: ignore[attr-defined]
    assert REQUEST_ID.hex() in record.getMessage()
    snapshot = metrics.snapshot()
    assert snapshot["cards_sealed"] == 254
    assert snapshot["card_refusals"] == {"unknown-mailer": 2}
    assert snapshot["requests"] == {"seal-batch": 1}
    assert snapshot["pkcs11_seconds"] == 0.5


def test_refusals_and_failures_by_reason_and_the_queue_depth(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = ServiceMetrics()
    caplog.set_level(logging.INFO, logger="sealcard.hsm.service")
    metrics.request_done(REQUEST_ID, "xpub", RequestOutcome(1, "replay"), 0.001)
    metrics.request_done(REQUEST_ID, "xpub", RequestOutcome(1, "replay"), 0.001)
    metrics.request_done(REQUEST_ID, "-", RequestOutcome(2, "internal-error"), 0.001)
    assert [r.levelno for r in caplog.records] == [logging.WARNING] * 3
    assert "status=refused reason=replay" in caplog.records[0].getMessage()
    metrics.waiting(+1)
    metrics.waiting(+1)
    metrics.waiting(-1)
    snapshot = metrics.snapshot()
    assert snapshot["refusals"] == {"replay": 2}
    assert snapshot["failures"] == {"internal-error": 1}
    assert (snapshot["queue_depth"], snapshot["queue_depth_max"]) == (1, 2)
