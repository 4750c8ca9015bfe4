"""The user system end to end on simulated cards: `sealcard issuer serve` (TLS, SoftHSM2, the
issuer HSM service) and `sealcard user activate` as subprocesses, in both PIN variants; the
refusals a customer meets (exit code, one line on stderr, JSON); a lost card replaced with the
same user key, the lost card terminated when it turns up; an issuer PIN reset through the
user's computer after the bank's approval."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from personal import session_on
from simcards import reset_blank

from sealcard.card.constants import State
from sealcard.hsm.pin_letter import open_pin_letter
from sealcard.issuer.db import Database
from sealcard.parties.provider import ProviderCA, initialize_card

pytestmark = pytest.mark.sim

OPERATOR = ("olivia", "operator password 1")
CUSTOMERS = "customer_ref,name,address\nC1,Ada Lovelace,1 Main St\nC2,Bob Byron,2 Main St\n"
ORDERS = "customer_ref,channel,pin_source,mailer\nC1,activation,none,\nC2,activation,hsm,post\n"
PIN, PUK, NEW_PIN = b"482916", b"73519264", b"5555"
START_S = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(args: Sequence[str], secrets: Sequence[bytes] = (), timeout: float = 300) -> Any:
    """`sealcard ARGS` as a subprocess; each secret goes through its own pipe (fd 3, 4, ...),
    never argv. Returns the CompletedProcess."""
    fds: list[int] = []
    pass_fds: list[int] = []
    try:
        for secret in secrets:
            read_end, write_end = os.pipe()
            os.write(write_end, secret + b"\n")
            os.close(write_end)
            fds.append(read_end)
        argv = [sys.executable, "-m", "sealcard.cli.main", *args]
        # the secrets' fds become 3, 4, ... in the child through a small shell redirect
        redirects = " ".join(f"{3 + i}<&{fd}" for i, fd in enumerate(fds))
        pass_fds = fds
        command = ["bash", "-c", f'exec "$@" {redirects}', "bash", *argv]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, pass_fds=pass_fds,
            check=False,
        )  # fmt: skip
    finally:
        for fd in fds:
            os.close(fd)


@dataclass
class Issuer:
    home: Path
    url: str
    cert: Path
    root: Path
    issuer_key: Path
    mailer_key: rsa.RSAPrivateKey
    credentials: dict[str, str]
    ca: ProviderCA

    def db(self) -> Database:
        return Database(f"sqlite:///{self.home / 'issuer.db'}")

    @contextmanager
    def operator(self) -> Iterator[httpx.Client]:
        with httpx.Client(base_url=self.url, verify=_trust(self.cert)) as client:
            login = {"login": OPERATOR[0], "password": OPERATOR[1]}
            token = client.post("/v1/session", json=login).json()["token"]
            client.headers["Authorization"] = f"Bearer {token}"
            yield client

    def user(self, login: str, *args: str, reader: str | None = None) -> list[str]:
        out = ["user", *args, "--issuer", self.url, "--login", login, "--password-fd", "3"]
        out += ["--issuer-cert", str(self.cert), "--json"]
        return out + (["--reader", reader] if reader else [])


def _trust(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


def _ok(result: Any) -> dict[str, Any]:
    assert result.returncode == 0, result.stdout + result.stderr
    payload: dict[str, Any] = json.loads(result.stdout)
    assert payload["ok"] is True
    return payload


@pytest.fixture(scope="module")
def issuer_side(
    tmp_path_factory: pytest.TempPathFactory,
    ca: ProviderCA,
    service_dirs: Callable[[str], Path],
) -> Iterator[Issuer]:
    if shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM2 is not installed")
    work = tmp_path_factory.mktemp("usersystem")
    home = service_dirs("usersystem") / "issuer"  # the issuer HSM service's own user reaches it
    _ok(run(["issuer", "init", "--home", str(home), "--json"]))
    _ok(run(["issuer", "hsm", "init", "--home", str(home), "--json"]))
    _ok(run(["issuer", "hsm", "start", "--home", str(home), "--json"]))
    server: subprocess.Popen[str] | None = None
    try:
        issuer_key = work / "issuer.pub.pem"
        _ok(run(["issuer", "hsm", "issuer-key", "--out", str(issuer_key), "--home", str(home),
                 "--json"]))  # fmt: skip
        mailer_key = rsa.generate_private_key(65537, 2048)
        mailer_pub = work / "mailer.pem"
        mailer_pub.write_bytes(
            mailer_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        _ok(run(["issuer", "hsm", "mailer", "add", "--id", "post", "--key", str(mailer_pub),
                 "--home", str(home), "--json"]))  # fmt: skip
        _ok(run(["issuer", "operator", "add", "--login", OPERATOR[0], "--role", "operator",
                 "--password-fd", "3", "--home", str(home), "--json"],
                [OPERATOR[1].encode()]))  # fmt: skip
        customers = work / "customers.csv"
        customers.write_text(CUSTOMERS)
        creds = work / "creds.csv"
        _ok(run(["issuer", "user", "import", "--file", str(customers),
                 "--credentials-out", str(creds), "--home", str(home), "--json"]))  # fmt: skip
        credentials = {
            line.split(",")[1]: line.split(",")[2] for line in creds.read_text().splitlines()[1:]
        }
        orders = work / "orders.csv"
        orders.write_text(ORDERS)
        order_import = ["issuer", "order", "import", "--file", str(orders)]
        _ok(run([*order_import, "--home", str(home), "--json"]))
        root = ca.directory / "root.pem" if ca.directory else work / "root.pem"
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "sealcard.cli.main", "issuer", "serve", "--home", str(home),
             "--listen", f"127.0.0.1:{port}", "--root", str(root), "--workers", "2",
             "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        url = f"https://127.0.0.1:{port}"
        cert = home / "tls" / "server.pem"
        deadline = time.monotonic() + START_S
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                if httpx.get(f"{url}/v1/health", verify=_trust(cert)).json()["hsm"]:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "issuer serve did not start"
            time.sleep(0.2)
        yield Issuer(home, url, cert, root, issuer_key, mailer_key, credentials, ca)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        run(["issuer", "hsm", "stop", "--home", str(home)])


def _initialized(card: Any, ca: ProviderCA, issuer_key_pem: Path) -> bytes:
    reset_blank(card)
    key = serialization.load_pem_public_key(issuer_key_pem.read_bytes())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    with session_on(card) as session:
        return initialize_card(session, ca, key).serial


def _state(card: Any) -> int:
    with session_on(card) as session:
        return int(session.refresh_status().state)


def _order_state(issuer: Issuer, order_id: int) -> str:
    db = issuer.db()
    try:
        with db.transaction() as tx:
            return str(tx.scalar("SELECT state FROM orders WHERE id = ?", (order_id,)))
    finally:
        db.close()


def _pubkey(card: Any) -> str:
    with session_on(card) as session:
        return (
            session.user_public_key()
            .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
            .hex()
        )


def test_activation_both_pin_variants_then_refusals_and_card_life(
    sim_cards: list[Any], issuer_side: Issuer, ca: ProviderCA, tmp_path: Path
) -> None:
    issuer = issuer_side
    card_a, card_b, card_c, card_d = sim_cards[:4]

    # 1. PIN chosen by the user on the card
    serial_a = _initialized(card_a, ca, issuer.issuer_key)
    result = run(
        issuer.user("C1", "activate", "--pin-fd", "4", "--puk-fd", "5", reader=card_a.reader),
        [issuer.credentials["C1"].encode(), PIN, PUK],
    )
    out = _ok(result)
    assert out["serial"] == serial_a.hex().upper() and out["pin"] == "user"
    assert issuer.credentials["C1"] not in result.stdout + result.stderr
    assert _order_state(issuer, out["order_id"]) == "personalized"
    with session_on(card_a) as session:
        session.verify_pin(PIN)
        assert session.pin_status().pin_set
    key_a = _pubkey(card_a)
    assert key_a == out["user_public_key"]

    # 2. PIN made by the issuer HSM and mailed
    serial_b = _initialized(card_b, ca, issuer.issuer_key)
    out_b = _ok(run(issuer.user("C2", "activate", reader=card_b.reader),
                    [issuer.credentials["C2"].encode()]))  # fmt: skip
    assert out_b["pin"] == "mailed" and out_b["serial"] == serial_b.hex().upper()
    db = issuer.db()
    with db.transaction() as tx:
        letter = bytes(tx.scalar("SELECT letter FROM pin_letters WHERE order_id = ?",
                                 (out_b["order_id"],)))  # fmt: skip
    db.close()
    issuer_cert = x509.load_pem_x509_certificate(
        (issuer.home / "hsm" / "issuer-cert.pem").read_bytes()
    )
    issuer_public = issuer_cert.public_key()
    assert isinstance(issuer_public, ec.EllipticCurvePublicKey)
    opened = open_pin_letter(letter, issuer.mailer_key, issuer_public)
    assert opened.serial == serial_b and opened.name == "Bob Byron"
    with session_on(card_b) as session:
        session.verify_pin(opened.pin)

    # 3. refusals: exit 1, one line, the card unchanged
    used = run(
        issuer.user("C1", "activate", reader=card_a.reader), [issuer.credentials["C1"].encode()]
    )
    assert used.returncode == 1 and json.loads(used.stdout)["ok"] is False
    plain = run([a for a in issuer.user("C1", "activate", reader=card_a.reader) if a != "--json"],
                [issuer.credentials["C1"].encode()])  # fmt: skip
    assert plain.returncode == 1
    assert plain.stderr.strip() == (
        "error: this card cannot be activated: it is personalized, not initialized"
    )
    wrong = run([a for a in issuer.user("C1", "activate", reader=card_a.reader) if a != "--json"],
                [b"not the password"])  # fmt: skip
    assert wrong.returncode == 1 and "wrong login or password" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1
    stranger = ProviderCA.create(tmp_path / "stranger", b"another provider")
    _initialized(card_c, stranger, issuer.issuer_key)
    foreign = run([a for a in issuer.user("C1", "activate", reader=card_c.reader) if a != "--json"],
                  [issuer.credentials["C1"].encode()])  # fmt: skip
    assert foreign.returncode == 1 and "not genuine" in foreign.stderr
    assert _state(card_c) == State.INITIALIZED

    # 4. C1 loses card A; a replacement with the same key; card A turns up and is terminated
    lost = _ok(run(issuer.user("C1", "report-lost", "--order", str(out["order_id"])),
                   [issuer.credentials["C1"].encode()]))  # fmt: skip
    assert lost["order"]["state"] == "lost"
    with issuer.operator() as operator:
        replacement = operator.post(
            f"/v1/orders/{out['order_id']}/replacement",
            json={"channel": "activation", "pin_source": "none"},
        )
        assert replacement.status_code == 200, replacement.text
    _initialized(card_d, ca, issuer.issuer_key)
    out_d = _ok(run(issuer.user("C1", "activate", "--pin-fd", "4", "--puk-fd", "5",
                                reader=card_d.reader),
                    [issuer.credentials["C1"].encode(), PIN, PUK]))  # fmt: skip
    assert out_d["order_id"] == replacement.json()["id"]
    assert out_d["user_public_key"] == key_a == _pubkey(card_d)  # the same key, new card
    check = _ok(run(issuer.user("C1", "check", reader=card_a.reader),
                    [issuer.credentials["C1"].encode()]))  # fmt: skip
    assert check["command"] == "terminate" and check["done"] is True
    assert _state(card_a) == State.TERMINATED
    assert _order_state(issuer, out["order_id"]) == "terminated"

    # 5. PIN reset through the user's computer: refused without the bank's approval, then done
    refused = run([a for a in issuer.user("C2", "reset-pin", "--new-pin-fd", "4",
                                          reader=card_b.reader) if a != "--json"],
                  [issuer.credentials["C2"].encode(), NEW_PIN])  # fmt: skip
    assert refused.returncode == 1 and "approval" in refused.stderr
    with issuer.operator() as operator:
        approved = operator.post(f"/v1/orders/{out_b['order_id']}/pin-reset-approval")
        assert approved.status_code == 200, approved.text
    reset = _ok(run(issuer.user("C2", "reset-pin", "--new-pin-fd", "4", reader=card_b.reader),
                    [issuer.credentials["C2"].encode(), NEW_PIN]))  # fmt: skip
    assert reset["command"] == "reset-pin" and reset["done"] is True
    with session_on(card_b) as session:
        session.verify_pin(NEW_PIN)
    nothing = _ok(run(issuer.user("C2", "check", reader=card_b.reader),
                      [issuer.credentials["C2"].encode()]))  # fmt: skip
    assert nothing["command"] is None and "nothing to do" in nothing["reason"]
