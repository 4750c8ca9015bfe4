"""Benchmark: sealed cards per second for a batch, through SoftHSM2 and the issuer HSM service.

    python bench/seal_batch.py [--cards 10000] [--chunk 256] [--rsa-pool 50] [--db URL] [--json]
                               [--pin-source hsm|none] [--service-workers N] [--keygen-threads N]

What it does, in a fresh temporary issuer home:
1. `issuer init` + `issuer hsm init` equivalents (SoftHSM2 tokens, keys, seed, a mailer key);
   starts the issuer HSM service as its own process;
2. imports a fabricated pack of N cards (RSA keys cycled from a pool of `--rsa-pool`, because
   RSA-2048 keygen costs 50-150 ms per key; every card still has its own serial and EC key);
   orders N cards for 100 users (default `--pin-source hsm`, FIG. 5: PIN and PUK made by the
   HSM, a PIN letter to the mailer; `--pin-source none`: no PIN in the blob, no letter);
3. seals the whole batch with `sealcard.issuer.batch.seal_orders` (the code `issuer seal`
   runs) and reports cards/s;
4. measures the per-card cost of each step as the system does it (SoftHSM2 via PKCS#11, the
   issuer HSM's derivation code, RSA-OAEP, the database commit points) and of the same
   primitives called directly (cryptography, coincurve), in the same run, and prints the ratio.

Besides wall-clock cards/s it prints the CPU time per card of each process (the sealer, i.e.
this process, and the issuer HSM service), read from the kernel: on a machine shared with other
work the wall clock measures the neighbours too, CPU time per card much less so. `cpu bound`
is 2 cores / (sealer + service CPU per card), the rate the two processes could reach at best on
two idle cores.

This is a script, not a timed test: the numbers depend on the machine and on what else runs.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import coincurve
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from sealcard.crypto import sealed_blob
from sealcard.crypto.bip32 import parse_path
from sealcard.issuer.batch import DEFAULT_KEYGEN_THREADS, seal_orders
from sealcard.issuer.config import init_home
from sealcard.issuer.db import Database
from sealcard.issuer.fake import import_fake_pack
from sealcard.issuer.migrations import apply_migrations
from sealcard.issuer.records import Records

USERS = 100
MAILER = "bench-mailer"
#: per card the issuer HSM signs twice (blob, PIN letter) and RSA-encrypts twice (blob to the
#: card, letter key to the mailer); without PIN letters once each
PER_CARD = {"hsm_signing": 2, "keygen_and_wrap": 1, "derivation": 1, "rsa_encryption": 2}
PER_CARD_NO_LETTER = {"hsm_signing": 1, "keygen_and_wrap": 1, "derivation": 1, "rsa_encryption": 1}
SAMPLES = 1000
SERVICE_START_TIMEOUT_S = 60.0


def per_call(func: Callable[[], object], samples: int = SAMPLES) -> float:
    """Mean seconds per call over `samples` calls (after a short warm-up)."""
    for _ in range(min(20, samples)):
        func()
    t0 = time.perf_counter()
    for _ in range(samples):
        func()
    return (time.perf_counter() - t0) / samples


def _oaep() -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def direct_costs() -> dict[str, float]:
    """The same primitives, called directly in this process (seconds per card)."""
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    message = os.urandom(300)
    kek = os.urandom(32)

    def keygen_wrap() -> bytes:
        key = ec.generate_private_key(ec.SECP256R1())
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return keywrap.aes_key_wrap_with_padding(kek, der)

    parent = coincurve.PrivateKey(os.urandom(32))
    parent_pub = parent.public_key.format()
    chain = os.urandom(32)
    counter = iter(range(10**9))

    def derive() -> bytes:  # one normal BIP32 step: HMAC-SHA512, scalar add, public key
        data = parent_pub + next(counter).to_bytes(4, "big")
        tweak = hmac.new(chain, data, hashlib.sha512).digest()[:32]
        child = parent.add(tweak)
        return bytes(child.secret) + child.public_key.format()

    rsa_public = rsa.generate_private_key(65537, 2048).public_key()
    payload = os.urandom(129)
    return {
        "hsm_signing": per_call(lambda: issuer_key.sign(message, ec.ECDSA(hashes.SHA256()))),
        "keygen_and_wrap": per_call(keygen_wrap),
        "derivation": per_call(derive),
        "rsa_encryption": per_call(lambda: rsa_public.encrypt(payload, _oaep())),
    }


def system_costs(home: Path) -> dict[str, float]:
    """Each step as the system does it (seconds per card), outside the batch."""
    from sealcard.hsm.config import load_settings
    from sealcard.hsm.derivation import InProcessDeriver
    from sealcard.hsm.system_hsm import DeviceAuthKeys
    from sealcard.hsm.token import Token

    settings = load_settings(home)
    token = Token.open(settings.system)
    try:
        label = "bench-signing-key"
        if not token.has_object(label):
            token.generate_ec_keypair(label, token=True)
        message = os.urandom(300)
        auth = DeviceAuthKeys(token)
        deriver = InProcessDeriver(os.urandom(64))
        base = parse_path("m/44'/0'/0'/0")
        counter = iter(range(10**9))
        rsa_public = rsa.generate_private_key(65537, 2048).public_key()
        device_point = auth.generate()[0]
        user_key = os.urandom(31) + b"\x01"
        sealed = sealed_blob.SealedPayload(user_key, device_point, b"123456", b"12345678")
        costs = {
            "hsm_signing": per_call(lambda: token.sign_ecdsa_sha256(label, message)),
            "keygen_and_wrap": per_call(auth.generate),
            "derivation": per_call(lambda: deriver.derive((*base, next(counter)))),
            "rsa_encryption": per_call(lambda: sealed_blob.encrypt_payload(sealed, rsa_public)),
        }
    finally:
        token.close()
    return costs


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def service_cpu_seconds(pid: int) -> float:
    """CPU seconds of the issuer HSM service: its main process and its live workers."""
    workers: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        workers += [int(c) for c in (task / "children").read_text().split()]
    return sum(process_cpu_seconds(p) for p in [pid, *workers])


def set_service_workers(root: Path, workers: int) -> None:
    """Set `workers` of [issuer_hsm] in the bench home's config.toml."""
    config = root / "config.toml"
    text = config.read_text().replace("[issuer_hsm]\n", f"[issuer_hsm]\nworkers = {workers}\n", 1)
    config.write_text(text)


def setup_home(root: Path, db_url: str | None) -> Records:
    """Issuer home with records and HSMs (what `issuer init` and `issuer hsm init` do)."""
    from sealcard.hsm.setup import setup_hsms

    home, _ = init_home(root, db_url)
    db = Database(home.database_url)
    apply_migrations(db)
    records = Records(db, "bench")
    records.initialize(home.derivation_base)
    setup_hsms(root)
    return records


def start_service(root: Path, socket_path: Path) -> subprocess.Popen[bytes]:
    """The issuer HSM service as its own process; returns once its socket exists."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sealcard.hsm.issuer_service", "--home", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + SERVICE_START_TIMEOUT_S
    while not socket_path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            err = proc.stderr.read().decode() if proc.stderr else ""
            proc.kill()
            raise SystemExit(f"the issuer HSM service did not start: {err.strip()}")
        time.sleep(0.05)
    return proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cards", type=int, default=10_000)
    parser.add_argument("--chunk", type=int, default=256)
    parser.add_argument("--rsa-pool", type=int, default=50)
    parser.add_argument("--db", default=None, help="database URL (default: SQLite in the home)")
    parser.add_argument(
        "--keygen-threads",
        type=int,
        default=DEFAULT_KEYGEN_THREADS,
        help="PKCS#11 sessions (threads) making device authentication keys",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="check each blob's issuer signature before storing (as `issuer seal`)",
    )
    parser.add_argument(
        "--pin-source",
        choices=["hsm", "none"],
        default="hsm",
        help="hsm (FIG. 5 default: PIN/PUK in the blob, a PIN letter per card) or none",
    )
    parser.add_argument(
        "--service-workers",
        type=int,
        default=None,
        help="worker processes of the issuer HSM service ([issuer_hsm] workers; default: cores)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    letters = args.pin_source == "hsm"

    from sealcard.hsm.config import load_settings
    from sealcard.hsm.issuer_client import IssuerHsmClient
    from sealcard.hsm.system_hsm import DeviceAuthKeys, RequestSigner
    from sealcard.hsm.token import Token

    with tempfile.TemporaryDirectory(prefix="sealcard-bench-") as tmp:
        os.chmod(tmp, 0o711)  # the service drops to its own user, which must reach its home
        root = Path(tmp) / "home"
        t0 = time.perf_counter()
        records = setup_home(root, args.db)
        if args.service_workers is not None:
            set_service_workers(root, args.service_workers)
        settings = load_settings(root)
        t_setup = time.perf_counter() - t0
        t0 = time.perf_counter()
        import_fake_pack(records, args.cards, "BENCH-PACK", rsa_pool=args.rsa_pool)
        records.record_mailers([MAILER])
        users = [
            records.add_user(f"User {i}", f"{i} Bench Street, Testville") for i in range(USERS)
        ]
        per_user = -(-args.cards // USERS)
        left = args.cards
        for user in users:
            n = min(per_user, left)
            if n:
                if letters:
                    records.request_orders(user.id, n, mailer_id=MAILER)
                else:
                    records.request_orders(user.id, n, pin_source="none")
            left -= n
        t_pack = time.perf_counter() - t0

        service = start_service(root, settings.socket_path)
        token = Token.open(settings.system, pool_size=args.keygen_threads + 1)
        try:
            client = IssuerHsmClient.for_settings(settings, RequestSigner(token))
            mailer_key = rsa.generate_private_key(65537, 2048)
            client.register_mailer(MAILER, mailer_key.public_key())
            service_cpu0 = service_cpu_seconds(service.pid)
            sealer_cpu0 = time.process_time()
            report = seal_orders(
                records,
                DeviceAuthKeys(token),
                client,
                chunk_size=args.chunk,
                issuer_public_key=client.issuer_public_key() if args.verify else None,
                keygen_threads=args.keygen_threads,
            )
            sealer_cpu = time.process_time() - sealer_cpu0
            service_cpu = service_cpu_seconds(service.pid) - service_cpu0
        finally:
            token.close()
            service.terminate()
            service.wait(timeout=30)
        system = system_costs(root)
        records.close()

    direct = direct_costs()
    for key, times in (PER_CARD if letters else PER_CARD_NO_LETTER).items():
        system[key] *= times
        direct[key] *= times
    n = max(report.sealed, 1)
    t = report.timings
    database = (t.reserve + t.fetch + t.store) / n
    system["database"] = database
    direct["database"] = database
    direct_total = sum(direct.values())
    system_total = sum(system.values())
    cpu_sealer_us = sealer_cpu / n * 1e6
    cpu_service_us = service_cpu / n * 1e6
    result = {
        "cards": report.sealed,
        "pin_source": args.pin_source,
        "service_workers": settings.workers,
        "seconds": round(report.seconds, 3),
        "cards_per_second": round(report.per_second, 1),
        "chunk": args.chunk,
        "verify": args.verify,
        "keygen_threads": args.keygen_threads,
        "setup_seconds": round(t_setup, 2),
        "pack_and_orders_seconds": round(t_pack, 2),
        "run_split_seconds": {k: round(v, 3) for k, v in vars(t).items()},
        "per_card_us_system": {k: round(v * 1e6, 1) for k, v in system.items()},
        "per_card_us_direct": {k: round(v * 1e6, 1) for k, v in direct.items()},
        "system_sum_us": round(system_total * 1e6, 1),
        "direct_sum_us": round(direct_total * 1e6, 1),
        "direct_limit_cards_per_second_one_core": round(1 / direct_total, 1),
        "ratio_achieved_to_direct_limit": round(report.per_second * direct_total, 3),
        "cpu_us_per_card": {
            "sealer": round(cpu_sealer_us, 1),
            "service": round(cpu_service_us, 1),
            "total": round(cpu_sealer_us + cpu_service_us, 1),
        },
        "cpu_bound_cards_per_second_two_idle_cores": round(
            2e6 / max(cpu_sealer_us + cpu_service_us, 1e-9), 1
        ),
        "load_average_1min_after": round(os.getloadavg()[0], 2),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"sealed {result['cards']} cards in {result['seconds']} s: "
        f"{result['cards_per_second']} cards/s (chunk {args.chunk}, pin source "
        f"{args.pin_source}, service workers {settings.workers}, keygen threads "
        f"{args.keygen_threads})"
    )
    print("run split (s): " + ", ".join(f"{k} {v}" for k, v in result["run_split_seconds"].items()))
    print(f"{'per card (us)':18} {'system':>10} {'direct':>10} {'ratio':>7}")
    for key in system:
        s_us, d_us = system[key] * 1e6, direct[key] * 1e6
        print(f"{key:18} {s_us:10.1f} {d_us:10.1f} {s_us / d_us:7.2f}")
    print(
        f"{'sum':18} {system_total * 1e6:10.1f} {direct_total * 1e6:10.1f} "
        f"{system_total / direct_total:7.2f}"
    )
    print(
        f"direct-primitive limit (one core, sum of direct costs): "
        f"{result['direct_limit_cards_per_second_one_core']} cards/s; achieved / limit = "
        f"{result['ratio_achieved_to_direct_limit']}"
    )
    cpu = result["cpu_us_per_card"]
    print(
        f"CPU per card (us): sealer {cpu['sealer']}, service {cpu['service']}, total "
        f"{cpu['total']}; cpu bound on two idle cores: "
        f"{result['cpu_bound_cards_per_second_two_idle_cores']} cards/s "
        f"(load average after the run: {result['load_average_1min_after']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
