"""The pieces of the services' logs and metrics, one by one: the JSON-lines formatter (fixed
keys, only the safe fields, no exception message), the metrics address, the histogram
buckets that cross from a worker to the main process, the issuer HSM service's Prometheus
exposition, and the metrics HTTP endpoint. The services themselves run in
tests/issuer/test_service_logs_metrics.py and tests/web/test_serve_observability.py."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from sealcard.errors import ConfigurationError
from sealcard.hsm.issuer_core import Pkcs11Clock
from sealcard.hsm.issuer_worker import decode_answer, encode_answer
from sealcard.hsm.service_exporter import ServiceCollector
from sealcard.hsm.service_metrics import (
    PKCS11_BUCKETS,
    Buckets,
    RequestOutcome,
    ServiceMetrics,
)
from sealcard.metrics_http import MetricsServer, parse_metrics_address
from sealcard.service_log import JsonLinesFormatter, configure, resolve_format

RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _record(msg: str, level: int = logging.INFO, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("sealcard.test", level, __file__, 1, msg, (), None)
    record.__dict__.update(extra)
    return record


def test_a_json_line_has_the_fixed_keys_and_only_safe_fields() -> None:
    line = JsonLinesFormatter().format(
        _record(
            "request done",
            event="request",
            request_id="ab" * 16,
            outcome="ok",
            duration_ms=1.5,
            pin="123456",  # not on the list: must not appear
            password="hunter2-password",
            body={"seed": "00" * 64},
        )
    )
    entry = json.loads(line)
    assert RFC3339_UTC.fullmatch(entry["time"]), entry["time"]
    assert entry["level"] == "info" and entry["logger"] == "sealcard.test"
    assert entry["event"] == "request" and entry["message"] == "request done"
    assert (entry["request_id"], entry["outcome"], entry["duration_ms"]) == ("ab" * 16, "ok", 1.5)
    assert {"pin", "password", "body"}.isdisjoint(entry)
    assert "123456" not in line and "hunter2" not in line and "00" * 64 not in line
    plain = json.loads(JsonLinesFormatter().format(_record("hello")))
    assert plain["event"] == "log" and "request_id" not in plain


def test_an_exception_shows_its_type_and_place_not_its_message() -> None:
    try:
        pin = str(900_000 + 87_654)  # made at run time: the source line shows no value
        raise ValueError(f"the PIN was {pin}")
    except ValueError:
        import sys

        record = _record("failed", logging.ERROR)
        record.exc_info = sys.exc_info()
    entry = json.loads(JsonLinesFormatter().format(record))
    assert entry["exc_type"] == "ValueError" and "test_service_observability" in entry["stack"]
    assert "987654" not in json.dumps(entry)


def test_the_format_follows_the_option_then_the_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert resolve_format(None, Tty()) == "text"
    assert resolve_format(None, io.StringIO()) == "json"
    assert (
        resolve_format("JSON", Tty()) == "json" and resolve_format("text", io.StringIO()) == "text"
    )
    out = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        assert configure("info", None, out) == "json"
        logging.getLogger("sealcard.x").info("one", extra={"event": "x.one"})
        logging.getLogger("sealcard.x").debug("not at info")
        configure("info", "text", out)  # replaces the handler: no doubled lines
        logging.getLogger("sealcard.x").warning("two")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    first, second = out.getvalue().splitlines()
    assert json.loads(first)["event"] == "x.one"
    assert second.endswith(" WARNING two") and not second.startswith("{")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("9464", ("127.0.0.1", 9464)),
        ("0.0.0.0:9464", ("0.0.0.0", 9464)),
        ("[::1]:9100", ("::1", 9100)),
        ("localhost:1", ("localhost", 1)),
    ],
)
def test_metrics_addresses(value: str, expected: tuple[str, int]) -> None:
    assert parse_metrics_address(value) == expected


@pytest.mark.parametrize("value", ["", "host:", "host:port", "70000", ":9464", "1.2.3.4:-1"])
def test_bad_metrics_addresses_are_refused(value: str) -> None:
    with pytest.raises(ConfigurationError, match="is not PORT or HOST:PORT"):
        parse_metrics_address(value)


def test_buckets_count_le_and_cross_the_worker_boundary() -> None:
    clock = Pkcs11Clock()
    clock.observe("sign", PKCS11_BUCKETS[0])  # exactly on a bound: that bucket (le = <=)
    clock.observe("sign", 0.003)
    clock.observe("generate_random", 99.0)  # past the last bound: +Inf
    seconds, calls, ops = clock.take()
    assert calls == 3 and seconds == pytest.approx(99.0 + 0.003 + PKCS11_BUCKETS[0])
    assert ops["sign"].counts[0] == 1 and ops["sign"].counts[PKCS11_BUCKETS.index(0.005)] == 1
    assert ops["generate_random"].counts[-1] == 1
    assert clock.take() == (0.0, 0, {})
    frame = encode_answer(RequestOutcome(0, cards=2, pkcs11_ops=ops), b"signed reply")
    outcome, response = decode_answer(frame)
    assert response == b"signed reply" and outcome.cards == 2
    assert {k: v.encode() for k, v in outcome.pkcs11_ops.items()} == {
        k: v.encode() for k, v in ops.items()
    }
    with pytest.raises(ValueError):
        Buckets.decode(PKCS11_BUCKETS, [1, 2, 3])


def _families(registry: CollectorRegistry) -> dict[str, dict[tuple[str, ...], float]]:
    from prometheus_client import generate_latest

    out: dict[str, dict[tuple[str, ...], float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            key = tuple(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out.setdefault(sample.name, {})[key] = sample.value
    return out


def test_the_hsm_exposition_reads_the_service_counters() -> None:
    metrics = ServiceMetrics()
    registry = CollectorRegistry()
    registry.register(ServiceCollector(metrics))
    before = _families(registry)
    assert before["sealcard_hsm_cards_sealed_total"] == {(): 0}
    assert before["sealcard_hsm_request_refusals_total"][("reason=replay",)] == 0  # from the start
    assert before["sealcard_hsm_card_refusals_total"][("reason=unknown-mailer",)] == 0

    sign = Buckets(PKCS11_BUCKETS)
    for seconds in (0.0002, 0.0002, 0.02):
        sign.observe(seconds)
    rid = bytes(16)
    sealed = RequestOutcome(
        0, cards=7, card_refusals={"unknown-mailer": 1}, pkcs11_ops={"sign": sign}
    )
    metrics.request_done(rid, "seal-batch", sealed, 0.3)
    metrics.request_done(rid, "xpub", RequestOutcome(1, "replay"), 0.001)
    metrics.request_done(rid, "-", RequestOutcome(2, "worker-gone"), 0.001)
    metrics.set_workers(3)
    metrics.busy(+1)
    after = _families(registry)
    assert after["sealcard_hsm_cards_sealed_total"] == {(): 7}
    assert after["sealcard_hsm_card_refusals_total"][("reason=unknown-mailer",)] == 1
    assert after["sealcard_hsm_request_refusals_total"][("reason=replay",)] == 1
    assert after["sealcard_hsm_request_failures_total"] == {("reason=worker-gone",): 1}
    assert after["sealcard_hsm_requests_total"][("op=seal-batch", "outcome=ok")] == 1
    assert after["sealcard_hsm_requests_total"][("op=xpub", "outcome=refused")] == 1
    assert after["sealcard_hsm_workers"] == {(): 3}
    assert after["sealcard_hsm_requests_in_flight"] == {(): 1}
    pkcs11 = after["sealcard_hsm_pkcs11_call_duration_seconds_bucket"]
    assert pkcs11[("le=0.00025", "operation=sign")] == 2  # cumulative
    assert pkcs11[("le=0.025", "operation=sign")] == 3
    assert pkcs11[("le=+Inf", "operation=sign")] == 3
    assert after["sealcard_hsm_pkcs11_call_duration_seconds_count"] == {("operation=sign",): 3}
    requests = after["sealcard_hsm_request_duration_seconds_bucket"]
    assert (
        requests[("le=0.25", "op=seal-batch")] == 0 and requests[("le=0.5", "op=seal-batch")] == 1
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_endpoint_serves_metrics_only_and_names_a_taken_address() -> None:
    registry = CollectorRegistry()
    Counter("sealcard_test_things", "Things.", registry=registry).inc(3)
    server = MetricsServer.start("0", registry)  # a port alone: loopback
    try:
        assert server.host == "127.0.0.1" and server.port > 0
        url = f"http://127.0.0.1:{server.port}"
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:
            assert answer.status == 200
            assert answer.headers["Content-Type"].startswith("text/plain")
            assert "sealcard_test_things_total 3.0" in answer.read().decode()
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{url}/", timeout=10)
        assert missing.value.code == 404
        with pytest.raises(ConfigurationError, match=f"cannot serve metrics on {server.port}"):
            MetricsServer.start(str(server.port), registry)
    finally:
        server.close()
