"""Benchmark: the issuer's HTTPS API and bulk intake (issue 9, issue 12 "intake at thousands
per second").

    python bench/api_throughput.py [--customers 10000] [--orders 10000] [--seconds 10]
                                   [--clients 4] [--activations 300] [--workers 8] [--json]

1. Intake, in this process, the code `issuer user import` and `issuer order import --file` run: N
   customers from a CSV with their generated credentials (Argon2id, generated-secret profile,
   one thread per core) and N orders, each in one transaction; plus the installed `sealcard`
   command as a subprocess for the customers (start-up and the credentials file included).
2. The API as clients meet it: `sealcard issuer serve`'s app under uvicorn over TLS on
   127.0.0.1 in its own process (SQLite, synchronous=FULL), with the software stand-ins for the
   two HSM roles (tests/support; SoftHSM's own cost is bench/seal_batch.py's subject), driven
   by `--clients` threads each on its own keep-alive connection:
   - sign-in: POST /v1/session with a good password, for `--seconds`;
   - activation without the card: per activation POST /v1/challenges, POST /v1/activation
     (attestation, INTERNAL AUTHENTICATE check, commit A, sealing, commit B) and POST
     /v1/activation/{id}/result, with cards made in software (their answers are signed in the
     client before the clock runs for that request: card time left out).
   Reports requests/s and the server's CPU time per request (from the kernel), which a shared
   machine disturbs less than the wall clock.

A script, not a timed test: the numbers depend on the machine and on what else runs.
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "host"), str(ROOT / "tests" / "support")]

import httpx  # noqa: E402

from sealcard.crypto.passwords import (  # noqa: E402
    GENERATED,
    generate_password,
    hash_password,
    verify_password,
)
from sealcard.issuer.accounts import Role  # noqa: E402
from sealcard.issuer.api_config import init_api  # noqa: E402
from sealcard.issuer.config import init_home  # noqa: E402
from sealcard.issuer.db import Database  # noqa: E402
from sealcard.issuer.migrations import apply_migrations  # noqa: E402
from sealcard.issuer.records import Records  # noqa: E402
from sealcard.parties.issuer.access import add_staff  # noqa: E402
from sealcard.parties.issuer.context import IssuerContext  # noqa: E402
from sealcard.parties.issuer.intake import import_customers_csv, import_orders_csv  # noqa: E402

SEED = bytes(range(32))
SERVER = """
import sys, threading, uvicorn
sys.path[:0] = {paths!r}
from cryptography.hazmat.primitives import serialization
from software_hsm import SoftwareDeviceAuthKeys, SoftwareIssuerHsm
from sealcard.issuer.records import Records
from sealcard.parties.provider import load_root_certificate
from sealcard.web.app import create_app
from sealcard.web.services import AppServices
from cryptography.hazmat.primitives.asymmetric import ec
key = serialization.load_pem_private_key(open({issuer_key!r}, "rb").read(), None)
hsm = SoftwareIssuerHsm({seed!r}, key)
services = AppServices(
    open_records=lambda actor: Records.open({url!r}, actor), auth_keys=SoftwareDeviceAuthKeys(),
    hsm=hsm, issuer_public_key=hsm.issuer_public_key(),
    provider_roots=[load_root_certificate(__import__("pathlib").Path({root!r}))],
    workers={workers},
)
uvicorn.run(create_app(services), host="127.0.0.1", port={port}, ssl_certfile={cert!r},
            ssl_keyfile={tls_key!r}, log_level="warning")
"""


def _csv_customers(n: int, prefix: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(("customer_ref", "name", "address"))
    writer.writerows(
        (f"{prefix}{i:07d}", f"Customer {i}", f"{i} Long Street, Town") for i in range(n)
    )
    return out.getvalue()


def intake(work: Path, customers: int, orders: int) -> dict[str, float]:
    home, _ = init_home(work / "intake")
    db = Database(home.database_url)
    apply_migrations(db)
    records = Records(db, "bench")
    records.initialize()
    ctx = IssuerContext(records)
    text = _csv_customers(customers, "K")
    t0 = time.perf_counter()
    result = import_customers_csv(ctx, text)
    t1 = time.perf_counter()
    order_rows = "".join(f"K{i % customers:07d},bureau,none\n" for i in range(orders))
    t2 = time.perf_counter()
    made = import_orders_csv(ctx, "customer_ref,channel,pin_source\n" + order_rows)
    t3 = time.perf_counter()
    assert result.users == customers and len(made.orders) == orders
    db.close()
    # the bare primitive in the same run: Argon2id of the generated-secret profile on all cores
    from sealcard.parties.issuer.intake import _hash_all

    sample = [generate_password() for _ in range(max(200, customers // 10))]
    h0 = time.perf_counter()
    _hash_all(sample, os.cpu_count() or 1, None)
    bare_rate = len(sample) / (time.perf_counter() - h0)
    encoded = hash_password(sample[0], GENERATED)
    v0 = time.perf_counter()
    for _ in range(50):
        verify_password(encoded, sample[0])
    bare_verify_ms = (time.perf_counter() - v0) * 1000 / 50
    csv_path = work / "cli-customers.csv"
    csv_path.write_text(_csv_customers(customers, "L"))
    cli_home = work / "cli-home"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "host")}
    subprocess.run(
        [sys.executable, "-m", "sealcard.cli.main", "issuer", "init", "--home", str(cli_home)],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    t4 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "sealcard.cli.main", "issuer", "user", "import",
         "--file", str(csv_path), "--credentials-out", str(work / "creds.csv"),
         "--home", str(cli_home), "--json"],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    t5 = time.perf_counter()
    return {
        "customers": customers,
        "customers_seconds": t1 - t0,
        "customers_per_second": customers / (t1 - t0),
        "orders": orders,
        "orders_seconds": t3 - t2,
        "orders_per_second": orders / (t3 - t2),
        "cli_customers_seconds": t5 - t4,
        "bare_hashes_per_second": bare_rate,
        "intake_to_bare_hashing": (customers / (t1 - t0)) / bare_rate,
        "bare_verify_ms": bare_verify_ms,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _drive(
    clients: int, work: Any
) -> tuple[list[int], float, threading.Event, list[threading.Thread]]:
    """Start `work(client_index, stop_event) -> requests done` on `clients` threads."""
    counts = [0] * clients
    stop = threading.Event()

    def run(i: int) -> None:
        counts[i] = work(i, stop)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    return counts, t0, stop, threads


def api(work: Path, seconds: float, clients: int, activations: int, workers: int) -> dict[str, Any]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from soft_card import make_card

    from sealcard.formats.card_upload import card_to_wire
    from sealcard.parties.provider import ProviderCA

    root_dir = work / "api"
    home, _ = init_home(root_dir)
    settings, _, _ = init_api(root_dir)
    db = Database(home.database_url)
    apply_migrations(db)
    records = Records(db, "bench")
    records.initialize()
    ctx = IssuerContext(records)
    add_staff(ctx, "olivia", Role.OPERATOR, "operator password 1")
    n = max(activations, clients)
    text = _csv_customers(n, "A")
    creds = import_customers_csv(ctx, text).credentials
    import_orders_csv(
        ctx,
        "customer_ref,channel,pin_source\n"
        + "".join(f"A{i:07d},activation,none\n" for i in range(n)),
    )
    db.close()
    ca = ProviderCA.create(work / "ca", b"bench passphrase")
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    key_path = work / "issuer-key.pem"
    key_path.write_bytes(
        issuer_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )  # fmt: skip
    cards = [make_card(ca, issuer_key.public_key()) for _ in range(n)]
    port = _free_port()
    script = SERVER.format(
        paths=[str(ROOT / "host"), str(ROOT / "tests" / "support")], issuer_key=str(key_path),
        seed=SEED, url=home.database_url, root=str(ca.directory / "root.pem"),
        workers=workers, port=port, cert=str(settings.tls_cert), tls_key=str(settings.tls_key),
    )  # fmt: skip
    server = subprocess.Popen([sys.executable, "-c", script])
    base = f"https://127.0.0.1:{port}"
    trust = ssl.create_default_context(cafile=str(settings.tls_cert))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/v1/health", verify=trust)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the bench server did not start") from None
                time.sleep(0.2)

        # sign-in: every client signs in as its own customer, again and again
        def sign_in(i: int, stop: threading.Event) -> int:
            done = 0
            login, password = creds[i].login, creds[i].password
            with httpx.Client(base_url=base, verify=trust) as client:
                while not stop.is_set():
                    answer = client.post("/v1/session", json={"login": login, "password": password})
                    assert answer.status_code == 200, answer.text
                    done += 1
            return done

        cpu0 = _cpu_of(server.pid)
        counts, t0, stop, threads = _drive(clients, sign_in)
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        sign_ins = sum(counts)
        sign_in_cpu = _cpu_of(server.pid) - cpu0

        # activation: each client works through its share of the customers and cards
        share = [list(range(i, n, clients)) for i in range(clients)]
        server_time = [0.0] * clients

        def activate(i: int, stop: threading.Event) -> int:
            done = 0
            with httpx.Client(base_url=base, verify=trust) as client:
                for k in share[i][: activations // clients]:
                    token = client.post(
                        "/v1/session", json={"login": creds[k].login, "password": creds[k].password}
                    ).json()["token"]
                    headers = {"Authorization": f"Bearer {token}"}
                    s0 = time.perf_counter()
                    made = client.post("/v1/challenges", json={"purpose": "activation"},
                                       headers=headers).json()  # fmt: skip
                    assert "challenge" in made, made
                    s1 = time.perf_counter()
                    answer = cards[k].answer(base64.b64decode(made["challenge"]))  # card time
                    body = {
                        "challenge_id": made["challenge_id"],
                        "card": card_to_wire(cards[k].data),
                        "signature": base64.b64encode(answer).decode(),
                    }
                    s2 = time.perf_counter()
                    reply = client.post("/v1/activation", json=body, headers=headers)
                    assert reply.status_code == 200, reply.text
                    client.post(f"/v1/activation/{reply.json()['order_id']}/result",
                                json={"personalized": True}, headers=headers)  # fmt: skip
                    s3 = time.perf_counter()
                    server_time[i] += (s1 - s0) + (s3 - s2)
                    done += 1
            return done

        cpu1 = _cpu_of(server.pid)
        counts, t0, stop, threads = _drive(clients, activate)
        for t in threads:
            t.join()
        activation_wall = time.perf_counter() - t0
        activated = sum(counts)
        activation_cpu = _cpu_of(server.pid) - cpu1
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "clients": clients,
        "workers": workers,
        "sign_ins": sign_ins,
        "sign_in_per_second": sign_ins / elapsed,
        "sign_in_server_cpu_ms": 1000 * sign_in_cpu / max(sign_ins, 1),
        "activations": activated,
        "activations_per_second": activated / activation_wall,
        "activation_requests_per_second": 3 * activated / activation_wall,
        "activation_server_cpu_ms": 1000 * activation_cpu / max(activated, 1),
        "note": "activation rate includes one sign-in per activation; card time excluded",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--activations", type=int, default=300)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sealcard-api-bench-") as tmp:
        work = Path(tmp)
        result = {
            "intake": intake(work, args.customers, args.orders),
            "api": api(work, args.seconds, args.clients, args.activations, args.workers),
            "load_average": os.getloadavg(),
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    i, a = result["intake"], result["api"]
    print(f"intake: {i['customers']} customers in {i['customers_seconds']:.2f} s "
          f"({i['customers_per_second']:.0f}/s; the CLI with start-up and file: "
          f"{i['cli_customers_seconds']:.2f} s); {i['orders']} orders in "
          f"{i['orders_seconds']:.2f} s "
          f"({i['orders_per_second']:.0f}/s)")  # fmt: skip
    print(f"bare Argon2id (generated profile) on all cores: {i['bare_hashes_per_second']:.0f}"
          f" hashes/s; intake reaches {i['intake_to_bare_hashing']:.2f} of it; one verify "
          f"{i['bare_verify_ms']:.2f} ms")  # fmt: skip
    print(f"sign-in: {a['sign_in_per_second']:.0f} requests/s with {a['clients']} clients "
          f"({a['sign_in_server_cpu_ms']:.2f} ms server CPU each)")  # fmt: skip
    print(f"activation: {a['activations_per_second']:.1f} activations/s = "
          f"{a['activation_requests_per_second']:.0f} requests/s "
          f"({a['activation_server_cpu_ms']:.1f} ms server CPU per activation, its sign-in "
          f"included; card time excluded)")  # fmt: skip
    print(f"load average during the run: {result['load_average']}")


if __name__ == "__main__":
    main()
