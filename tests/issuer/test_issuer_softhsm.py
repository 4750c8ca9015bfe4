"""The whole issuer stack through the CLI: SoftHSM2 tokens, the issuer HSM service, sealing,
and a SIGKILL of `sealcard issuer seal` in the middle of a batch followed by a re-run.

Every HSM step runs in a child process (the CLI or the service), so this test process never
loads a SoftHSM configuration of its own."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from bip_utils import Bip32Secp256k1
from coincurve import PrivateKey
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sealcard.crypto import sealed_blob
from sealcard.hsm.pin_letter import open_pin_letter
from sealcard.issuer.db import Database
from sealcard.issuer.fake import FakePack, fabricate_pack
from sealcard.issuer.records import Records

pytestmark = pytest.mark.issuer

SOFTHSM_UTIL = shutil.which("softhsm2-util")
ORDERS = 400
CHUNK = 8
MAILER = "post"
SERVICE_START_S = 60.0


def sealcard(home: Path, *args: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-m", "sealcard.cli.main", "issuer", *args, "--home", str(home), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    payload: dict[str, object] = json.loads(result.stdout)
    return payload


def seal_argv(home: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "sealcard.cli.main",
        "issuer",
        "seal",
        "--home",
        str(home),
        "--chunk-size",
        str(CHUNK),
        "--json",
    ]


@pytest.fixture(scope="module")
def pack() -> FakePack:
    return fabricate_pack(ORDERS, "SOFTHSM-PACK", rsa_pool=4)


@pytest.fixture(scope="module")
def mailer_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


@pytest.fixture(scope="module")
def home(
    service_dirs: Callable[[str], Path], pack: FakePack, mailer_key: rsa.RSAPrivateKey
) -> Iterator[Path]:
    if SOFTHSM_UTIL is None:
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")
    root = service_dirs("issuer") / "home"
    sealcard(root, "init")
    sealcard(root, "hsm", "init")
    service = subprocess.Popen(
        [sys.executable, "-m", "sealcard.hsm.issuer_service", "--home", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + SERVICE_START_S
        while not (root / "run" / "issuer-hsm.sock").exists():
            assert service.poll() is None, service.stderr.read() if service.stderr else ""
            assert time.monotonic() < deadline, "the issuer HSM service did not start"
            time.sleep(0.05)
        key_file = root / "mailer.pub.pem"
        key_file.write_bytes(
            mailer_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        sealcard(root, "hsm", "mailer", "add", "--id", MAILER, "--key", str(key_file))
        records = Records.open(f"sqlite:///{root / 'issuer.db'}", "test")
        with records.db:
            records.import_pack(pack.pack_serial, pack.cards)
            users = [records.add_user(f"User {i}", f"{i} Test Road") for i in range(9)]
            for i in range(ORDERS):
                records.request_orders(users[i % len(users)].id, mailer_id=MAILER)
        yield root
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.kill()


def _count(db: Database, state: str) -> int:
    """Orders in a state, read without a write lock: `Database.transaction` takes SQLite's
    writer lock (BEGIN IMMEDIATE), and a poll that waits behind a fast sealer's commits can
    miss the moment to kill it; a plain reader (WAL) never waits."""
    path = db.url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM orders WHERE state = ?", (state,)).fetchone()
    return int(count)


def test_sigkill_seal_then_resume_through_softhsm(
    home: Path, pack: FakePack, mailer_key: rsa.RSAPrivateKey
) -> None:
    db = Database(f"sqlite:///{home / 'issuer.db'}")
    kills = 0
    for _ in range(3):  # kill three runs part way, each after some commit points B
        before = _count(db, "sealed")
        proc = subprocess.Popen(seal_argv(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        while _count(db, "sealed") < before + 3 * CHUNK and proc.poll() is None:
            time.sleep(0.002)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        out, err = proc.communicate(timeout=60)
        assert proc.returncode in (0, -signal.SIGKILL), (out + err).decode()
    assert kills >= 2, "the sealer finished before it could be killed: raise ORDERS"
    assert 0 < _count(db, "sealed") < ORDERS
    result = subprocess.run(
        seal_argv(home), capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["stopped"] == "done"

    with db.transaction() as tx:
        assert tx.all("SELECT state, COUNT(*) FROM orders GROUP BY state") == [("sealed", ORDERS)]
        assert tx.scalar("SELECT COUNT(DISTINCT card_serial) FROM orders") == ORDERS
        assert tx.scalar("SELECT COUNT(*) FROM derivation_elements") == ORDERS
        assert tx.scalar("SELECT value FROM counters WHERE name = 'derivation_index'") == ORDERS
        assert tx.scalar("SELECT COUNT(*) FROM sealed_blobs") == ORDERS
        assert tx.scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'order.sealed'") == ORDERS
        rows = tx.all(
            "SELECT s.card_serial, s.blob, s.user_public_key, d.idx, l.letter, u.name"
            " FROM sealed_blobs s JOIN derivation_elements d ON d.idx = s.derivation_index"
            " JOIN pin_letters l ON l.order_id = s.order_id"
            " JOIN orders o ON o.id = s.order_id JOIN users u ON u.id = o.user_id"
        )
    db.close()

    # the user keys in the blobs are BIP32 children of the HSM's xpub, by an independent library
    xpub = str(sealcard(home, "hsm", "xpub")["xpub"])
    watch_only = Bip32Secp256k1.FromExtendedKey(xpub)
    cert_pem = (home / "hsm" / "issuer-cert.pem").read_bytes()
    issuer_public = x509.load_pem_x509_certificate(cert_pem).public_key()
    assert isinstance(issuer_public, ec.EllipticCurvePublicKey)
    for serial_hex, blob, user_public_key, index, letter, name in rows[:: max(1, ORDERS // 40)]:
        serial = bytes.fromhex(serial_hex)
        payload = sealed_blob.open_blob(
            bytes(blob), serial, pack.device_keys[serial], issuer_public
        )
        expected = watch_only.ChildKey(int(index)).PublicKey().RawCompressed().ToBytes()
        assert bytes(user_public_key) == expected
        assert PrivateKey(payload.user_private_key).public_key.format() == expected
        opened = open_pin_letter(bytes(letter), mailer_key, issuer_public)
        assert opened.serial == serial and opened.name == name
        assert opened.pin == payload.pin and opened.puk == payload.puk
