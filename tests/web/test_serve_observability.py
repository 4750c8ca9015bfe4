"""`sealcard issuer serve --metrics ... --log-format json` as an operator watches it: sign-ins
that fail and one that works, a call with the session, a missing order and a path no route
has; then every line of stderr is a JSON object with the fixed keys, each request line has
its id (the client's X-Request-Id when it sent a plain one), outcome, route template and
time, the scraped counters moved by exactly those requests, and neither the log nor the
metrics hold the password, the wrong password, the session token or a path's values."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
FIXED_KEYS = {"time", "level", "logger", "event", "message", "pid"}
PASSWORD = "correct horse battery staple 7"
WRONG = "wrong-password-4417"
ORDER_ID = "987654321"  # a path value: never in the log or the metrics


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "host")}


def _scanner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("secret_scan", ROOT / "tools" / "secret_scan.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["secret_scan"] = module
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sealcard.cli.main", *args],
        capture_output=True, text=True, timeout=120, check=False, env=_env(), **kwargs,
    )  # fmt: skip


def _scrape(port: int) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
        text = answer.read().decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return text, values


def _value(values: dict[Any, float], name: str, **labels: str) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


def test_api_log_lines_and_metrics(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert _cli("issuer", "init", "--home", str(home)).returncode == 0
    read_end, write_end = os.pipe()
    os.write(write_end, f"{PASSWORD}\n".encode())
    os.close(write_end)
    added = _cli(
        "issuer", "operator", "add", "--home", str(home), "--login", "olga", "--role",
        "operator", "--password-fd", str(read_end), pass_fds=(read_end,),
    )  # fmt: skip
    os.close(read_end)
    assert added.returncode == 0, added.stderr
    port, metrics_port = _free_port(), _free_port()
    log_path = tmp_path / "api.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sealcard.cli.main", "issuer", "serve", "--home", str(home),
             "--no-hsm", "--listen", f"127.0.0.1:{port}", "--metrics", f"127.0.0.1:{metrics_port}",
             "--log-format", "json"],
            stdout=subprocess.DEVNULL, stderr=log, env=_env(),
        )  # fmt: skip
    trust = ssl.create_default_context(cafile=str(home / "tls" / "server.pem"))
    api = httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=trust, timeout=30)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                api.get("/v1/health")
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        _, before = _scrape(metrics_port)
        for _ in range(2):
            bad = api.post("/v1/session", json={"login": "olga", "password": WRONG})
            assert bad.status_code == 401
        good = api.post(
            "/v1/session",
            json={"login": "olga", "password": PASSWORD},
            headers={"X-Request-Id": "support-case-0001"},
        )
        assert good.status_code == 200 and good.headers["x-request-id"] == "support-case-0001"
        token = good.json()["token"]
        bearer = {"Authorization": f"Bearer {token}"}
        assert api.get("/v1/me", headers=bearer).status_code == 200
        missing = api.get(f"/v1/orders/{ORDER_ID}", headers=bearer)
        assert missing.status_code == 404
        assert re.fullmatch(r"[0-9a-f]{32}", missing.headers["x-request-id"])
        assert api.get(f"/no/such/{ORDER_ID}?token={token}").status_code == 404
        metrics_text, after = _scrape(metrics_port)
    finally:
        api.close()  # uvicorn waits for open keep-alive connections before it stops
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

    def moved(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    session = {"method": "POST", "route": "/v1/session"}
    assert moved("sealcard_api_requests_total", **session, status="401") == 2
    assert moved("sealcard_api_requests_total", **session, status="200") == 1
    assert moved("sealcard_api_request_duration_seconds_count", **session) == 3
    order = {"method": "GET", "route": "/v1/orders/{order_id}", "status": "404"}
    assert moved("sealcard_api_requests_total", **order) == 1
    assert moved("sealcard_api_requests_total", method="GET", route="unmatched", status="404") == 1
    failures = {k: v for (n, k), v in after.items() if n == "sealcard_api_sign_in_failures_total"}
    assert failures == {(("reason", "wrong_credentials"),): 2}, failures
    assert _value(after, "sealcard_api_activations_total") == 0
    assert _value(after, "sealcard_api_requests_in_flight") == 0

    # -- the log: every line JSON; one line per request, with id, outcome, route, time
    log_text = log_path.read_text(encoding="utf-8")
    entries = [json.loads(line) for line in log_text.splitlines()]
    for entry in entries:
        assert entry.keys() >= FIXED_KEYS, entry
    events = [e["event"] for e in entries]
    assert "service.ready" in events and "service.start" in events
    requests = [e for e in entries if e["event"] == "request"]
    for entry in requests:
        assert {"request_id", "outcome", "duration_ms", "route", "status", "method"} <= entry.keys()
    signed_in = [e for e in requests if e["request_id"] == "support-case-0001"]
    assert [(e["route"], e["status"], e["outcome"]) for e in signed_in] == [
        ("/v1/session", 200, "ok")
    ]
    refused = [e for e in requests if e["route"] == "/v1/session" and e["status"] == 401]
    assert len(refused) == 2 and all(e["outcome"] == "client_error" for e in refused)
    assert ORDER_ID not in log_text and ORDER_ID not in metrics_text

    # -- no secret in either
    scan = _scanner()
    secrets = [
        scan.Secret("password", PASSWORD.encode()),
        scan.Secret("wrong password", WRONG.encode()),
        scan.Secret("session token", token.encode()),
    ]
    scanner = scan.Scanner(secrets)
    found = scanner.scan_bytes(log_text.encode(), "the API's log")
    found += scanner.scan_bytes(metrics_text.encode(), "the metrics")
    assert not found, "\n".join(f.line() for f in found)
    assert scanner.scan_bytes(f"x{token}x".encode(), "a planted token")  # the search can fail
