"""Benchmark: sealed cards per second through SoftHSM2 and the issuer HSM service, as ratios
to the bare primitives measured in the same run (issue 12's goals).

    python bench/seal_batch.py [--cards 10000] [--runs 3] [--in-flight 2] [--service-workers N]
                               [--keygen-threads N] [--verify sample|all|none]
                               [--pin-source hsm|none] [--chunk 256] [--db URL] [--split] [--json]

In a fresh temporary issuer home (`issuer init`, `issuer hsm init`, the issuer HSM service
started as its own process: as root it drops to its own user, so the home is made reachable
for it), a mailer registered, then `--runs` times:
1. a new fabricated pack of N cards (RSA keys cycled from a pool of `--rsa-pool`: RSA-2048
   keygen costs 50-150 ms a key) and N orders for 100 users (default `--pin-source hsm`,
   FIG. 5: PIN and PUK from the HSM, a PIN letter each; `none`: no PIN, no letter);
2. ../shared/bench/direct_limit.py (the bare primitives of one sealed card on one core;
   `--direct-limit PATH`), run as its own process: its wall-clock µs per card as it prints it,
   and its CPU µs per card (a run of N cards minus a run of 200: its start-up cancels out);
3. the batch sealed with `sealcard.issuer.batch.seal_orders` (the code `issuer seal` runs),
   timed, with the CPU time of this process (the sealer) and of the service (its main process
   and its workers, from /proc);
4. direct_limit.py again.

Per run it prints cards/s, the rate ratio (cards/s / (cores x the direct one-core rate, the
mean of the two direct runs)) and the CPU ratio (sealer + service CPU per card / the direct
CPU per card); at the end the median, minimum and maximum of each. The goals: rate ratio at
least 0.7, CPU ratio at most 1.4. On a machine shared with other work only the ratios of one
run mean anything, and they still move with the neighbours' load: repeat and read the spread.
`--split` adds the old per-step split (each step as the system does it versus directly).

This is a script, not a timed test.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import coincurve
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from sealcard.crypto import sealed_blob
from sealcard.crypto.bip32 import parse_path
from sealcard.hsm.system_hsm import DeviceAuthKeys
from sealcard.issuer.batch import (
    DEFAULT_CHUNKS_IN_FLIGHT,
    DEFAULT_KEYGEN_THREADS,
    SealTimings,
    seal_orders,
)
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


def per_call(
    func: Callable[[], object],
    samples: int = SAMPLES,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Mean seconds per call over `samples` calls (after a short warm-up), by `clock`: wall
    time, or `time.process_time` for this process's CPU time."""
    for _ in range(min(20, samples)):
        func()
    t0 = clock()
    for _ in range(samples):
        func()
    return (clock() - t0) / samples


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


def start_service(
    root: Path, socket_path: Path, extra: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    """The issuer HSM service as its own process; returns once its socket exists."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sealcard.hsm.issuer_service", "--home", str(root), *extra],
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


DIRECT_LIMIT = Path(__file__).resolve().parents[2] / "shared" / "bench" / "direct_limit.py"
DIRECT_BASE_CARDS = 200


def _direct_run(script: Path, cards: int) -> tuple[float, float]:
    """(µs per card as the script prints it (wall clock), CPU seconds of the whole run)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [sys.executable, str(script), str(cards)], capture_output=True, text=True, check=True
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return float(out.split("direct primitives:")[1].split("us per card")[0]), cpu


def direct_limit_us(script: Path, cards: int) -> tuple[float, float]:
    """The bare primitives of one sealed card on one core (the shared yardstick,
    ../shared/bench/direct_limit.py), run now: (wall µs per card as it prints it, CPU µs per
    card). The CPU figure is the difference of a run of `cards` and one of 200 cards, so the
    script's start (imports, an RSA key, its warm-up) cancels out."""
    wall, cpu = _direct_run(script, cards + DIRECT_BASE_CARDS)
    _, base_cpu = _direct_run(script, DIRECT_BASE_CARDS)
    return wall, (cpu - base_cpu) / cards * 1e6


def device_auth_key_costs(auth_keys: DeviceAuthKeys) -> tuple[float, float]:
    """CPU µs of one device authentication key: (in the issuer-system HSM as the sealer makes
    it: C_GenerateKeyPair, the public point, C_WrapKey, two C_DestroyObject; the yardstick's
    step E in software, as direct_limit.py does it: keygen, the scalar, AES key wrap)."""
    kek = os.urandom(32)

    def software() -> bytes:
        key = ec.generate_private_key(ec.SECP256R1())
        scalar = key.private_numbers().private_value.to_bytes(32, "big")
        key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return keywrap.aes_key_wrap_with_padding(kek, scalar)

    cpu = time.process_time
    return per_call(auth_keys.generate, clock=cpu) * 1e6, per_call(software, clock=cpu) * 1e6


def add_orders(records: Records, cards: int, letters: bool, run: int, rsa_pool: int) -> None:
    """A fresh fabricated pack of `cards` cards and as many orders over 100 users."""
    import_fake_pack(records, cards, f"BENCH-PACK-{run}", rsa_pool=rsa_pool)
    users = [
        records.add_user(f"User {run}.{i}", f"{i} Bench Street, Testville") for i in range(USERS)
    ]
    per_user = -(-cards // USERS)
    left = cards
    for user in users:
        n = min(per_user, left)
        if n:
            if letters:
                records.request_orders(user.id, n, mailer_id=MAILER)
            else:
                records.request_orders(user.id, n, pin_source="none")
        left -= n


def floor(
    direct_cpu_us: float, hsm_key_us: float, software_key_us: float, t: SealTimings, n: int
) -> dict[str, float]:
    """The best CPU ratio this HSM and database allow, whatever the code around them: the
    yardstick, plus what the HSM's device authentication key costs over the yardstick's own,
    plus the database's CPU per card (which the yardstick does not have). Every other step is
    counted at the yardstick's price, as if there were no Python, IPC or checks at all; the
    rate ratio can at most be its inverse (all cores busy all the time)."""
    database_us = t.database_cpu / n * 1e6
    best_cpu_us = direct_cpu_us + (hsm_key_us - software_key_us) + database_us
    return {
        "hsm_device_auth_key_cpu_us": round(hsm_key_us, 1),
        "software_device_auth_key_cpu_us": round(software_key_us, 1),
        "database_cpu_us": round(database_us, 1),
        "ratio_cpu": round(best_cpu_us / direct_cpu_us, 3),
        "ratio_rate": round(direct_cpu_us / best_cpu_us, 3),
    }


def _spread(values: list[float]) -> str:
    ordered = sorted(values)
    mid = ordered[len(ordered) // 2]
    return f"{_short(mid)} (min {_short(ordered[0])}, max {_short(ordered[-1])}, n={len(ordered)})"


def _short(value: float) -> str:
    """Three significant digits for a ratio, whole numbers for a rate (never 2.41e+03)."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape_loop(port: int, stop: threading.Event, counts: list[int]) -> None:
    """Scrape the service's metrics every 0.5 s (Prometheus's default is every 15 s)."""
    import urllib.request

    while not stop.wait(0.5):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            answer.read()
        counts[0] += 1


def metrics_overhead(args: argparse.Namespace, letters: bool) -> int:
    """Sealing rate with the service's metrics off and on, in the same run (issue 13)."""
    from sealcard.hsm.config import load_settings
    from sealcard.hsm.issuer_client import IssuerHsmClient
    from sealcard.hsm.system_hsm import RequestSigner
    from sealcard.hsm.token import Token

    rates: dict[str, list[float]] = {"off": [], "on": []}
    scrapes = [0]
    with tempfile.TemporaryDirectory(prefix="sealcard-bench-") as tmp:
        os.chmod(tmp, 0o711)  # the service drops to its own user, which must reach its home
        root = Path(tmp) / "home"
        records = setup_home(root, args.db)
        if args.service_workers is not None:
            set_service_workers(root, args.service_workers)
        settings = load_settings(root)
        records.record_mailers([MAILER])
        mailer_key = rsa.generate_private_key(65537, 2048).public_key()
        token = Token.open(settings.system, pool_size=args.in_flight * args.keygen_threads + 1)
        batch = 0
        try:
            for run in range(args.runs):
                order = ("off", "on") if run % 2 == 0 else ("on", "off")  # cancels drift
                for mode in order:
                    port = _free_port()
                    extra = ("--metrics", f"127.0.0.1:{port}") if mode == "on" else ()
                    service = start_service(root, settings.socket_path, extra)
                    stop = threading.Event()
                    scraper = threading.Thread(target=_scrape_loop, args=(port, stop, scrapes))
                    try:
                        client = IssuerHsmClient.for_settings(settings, RequestSigner(token))
                        client.register_mailer(MAILER, mailer_key)
                        add_orders(records, args.cards, letters, batch, args.rsa_pool)
                        batch += 1
                        if mode == "on":
                            scraper.start()
                        report = seal_orders(
                            records,
                            DeviceAuthKeys(token),
                            client,
                            chunk_size=args.chunk,
                            issuer_public_key=None,
                            keygen_threads=args.keygen_threads,
                            chunks_in_flight=args.in_flight,
                        )
                        client.close()
                    finally:
                        stop.set()
                        if scraper.is_alive():
                            scraper.join()
                        service.terminate()
                        service.wait(timeout=30)
                    rates[mode].append(report.per_second)
                    if not args.json:
                        print(f"run {run + 1}, metrics {mode}: {report.per_second:.1f} cards/s",
                              flush=True)  # fmt: skip
        finally:
            token.close()
    off, on = sorted(rates["off"]), sorted(rates["on"])
    ratios = sorted(b / a for a, b in zip(rates["off"], rates["on"], strict=True))
    result = {
        "cards_per_run": args.cards,
        "cards_per_second_off": rates["off"],
        "cards_per_second_on": rates["on"],
        "ratio_on_off_per_run": [round(r, 3) for r in ratios],
        "ratio_on_off_median": round(ratios[len(ratios) // 2], 3),
        "scrapes": scrapes[0],
        "load_average": round(os.getloadavg()[0], 2),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"metrics on/off: median ratio {result['ratio_on_off_median']} "
            f"({_spread(ratios)}); off {_spread(off)} cards/s, on {_spread(on)} cards/s; "
            f"{scrapes[0]} scrapes; load {result['load_average']}"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cards", type=int, default=10_000)
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="seal runs, each between two direct-limit runs (same process, same service)",
    )
    parser.add_argument("--chunk", type=int, default=256)
    parser.add_argument("--rsa-pool", type=int, default=50)
    parser.add_argument("--db", default=None, help="database URL (default: SQLite in the home)")
    parser.add_argument(
        "--keygen-threads",
        type=int,
        default=DEFAULT_KEYGEN_THREADS,
        help="PKCS#11 sessions (threads) making one chunk's device authentication keys",
    )
    parser.add_argument(
        "--in-flight",
        type=int,
        default=DEFAULT_CHUNKS_IN_FLIGHT,
        help="chunks sealed at once (each by its own service worker)",
    )
    parser.add_argument(
        "--verify",
        choices=["sample", "all", "none"],
        default="sample",
        help="issuer-signature check of one blob per chunk (as `issuer seal`), all, or none",
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
    parser.add_argument(
        "--direct-limit",
        type=Path,
        default=DIRECT_LIMIT,
        help="the direct-primitives yardstick (default ../shared/bench/direct_limit.py)",
    )
    parser.add_argument("--direct-cards", type=int, default=2000)
    parser.add_argument("--split", action="store_true", help="also the per-step split")
    parser.add_argument(
        "--metrics-overhead",
        action="store_true",
        help="instead: each run seals --cards with the service without metrics and again with "
        "--metrics (scraped every 0.5 s), in alternating order; prints both rates and the ratio",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    letters = args.pin_source == "hsm"
    cores = os.cpu_count() or 1
    if args.metrics_overhead:
        return metrics_overhead(args, letters)
    if not args.direct_limit.exists():
        raise SystemExit(f"no {args.direct_limit}: give --direct-limit PATH")

    from sealcard.hsm.config import load_settings
    from sealcard.hsm.issuer_client import IssuerHsmClient
    from sealcard.hsm.system_hsm import RequestSigner
    from sealcard.hsm.token import Token

    runs: list[dict[str, object]] = []
    split: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="sealcard-bench-") as tmp:
        os.chmod(tmp, 0o711)  # the service drops to its own user, which must reach its home
        root = Path(tmp) / "home"
        records = setup_home(root, args.db)
        if args.service_workers is not None:
            set_service_workers(root, args.service_workers)
        settings = load_settings(root)
        records.record_mailers([MAILER])
        service = start_service(root, settings.socket_path)
        token = Token.open(settings.system, pool_size=args.in_flight * args.keygen_threads + 1)
        try:
            client = IssuerHsmClient.for_settings(settings, RequestSigner(token))
            client.register_mailer(MAILER, rsa.generate_private_key(65537, 2048).public_key())
            for run in range(args.runs):
                add_orders(records, args.cards, letters, run, args.rsa_pool)
                before, before_cpu = direct_limit_us(args.direct_limit, args.direct_cards)
                load = os.getloadavg()[0]
                service_cpu0 = service_cpu_seconds(service.pid)
                sealer_cpu0 = time.process_time()
                report = seal_orders(
                    records,
                    DeviceAuthKeys(token),
                    client,
                    chunk_size=args.chunk,
                    issuer_public_key=None if args.verify == "none" else client.issuer_public_key(),
                    verify_every_blob=args.verify == "all",
                    keygen_threads=args.keygen_threads,
                    chunks_in_flight=args.in_flight,
                )
                sealer_cpu = time.process_time() - sealer_cpu0
                service_cpu = service_cpu_seconds(service.pid) - service_cpu0
                after, after_cpu = direct_limit_us(args.direct_limit, args.direct_cards)
                hsm_key_us, software_key_us = device_auth_key_costs(DeviceAuthKeys(token))
                direct_us = (before + after) / 2
                direct_cpu_us = (before_cpu + after_cpu) / 2
                n = max(report.sealed, 1)
                cpu_us = (sealer_cpu + service_cpu) / n * 1e6
                t = report.timings
                runs.append(
                    {
                        "cards": report.sealed,
                        "seconds": round(report.seconds, 3),
                        "cards_per_second": round(report.per_second, 1),
                        "direct_us_per_card": [round(before, 1), round(after, 1)],
                        "direct_cpu_us_per_card": [round(before_cpu, 1), round(after_cpu, 1)],
                        "direct_cards_per_second_all_cores": round(cores * 1e6 / direct_us, 1),
                        "ratio_rate": round(report.per_second * direct_us / 1e6 / cores, 3),
                        "cpu_us_per_card": {
                            "sealer": round(sealer_cpu / n * 1e6, 1),
                            "service": round(service_cpu / n * 1e6, 1),
                            "total": round(cpu_us, 1),
                        },
                        "ratio_cpu": round(cpu_us / direct_cpu_us, 3),
                        "database_us_per_card": round((t.reserve + t.fetch + t.store) / n * 1e6, 1),
                        "floor": floor(direct_cpu_us, hsm_key_us, software_key_us, t, n),
                        "load_average_before": round(load, 2),
                        "load_average_after": round(os.getloadavg()[0], 2),
                    }
                )
                if not args.json:
                    r = runs[-1]
                    cpu = r["cpu_us_per_card"]
                    print(
                        f"run {run + 1}: {r['cards_per_second']} cards/s; direct "
                        f"{before:.0f}/{after:.0f} us per card on one core (CPU "
                        f"{before_cpu:.0f}/{after_cpu:.0f}) -> "
                        f"{r['direct_cards_per_second_all_cores']} cards/s on {cores} cores; "
                        f"rate ratio {r['ratio_rate']}; CPU {cpu['total']} us/card "  # type: ignore[index]
                        f"(sealer {cpu['sealer']}, service {cpu['service']}) = "  # type: ignore[index]
                        f"{r['ratio_cpu']} x direct CPU; load {r['load_average_before']}",
                        flush=True,
                    )
                    f = r["floor"]
                    print(
                        f"       floor: device auth key {f['hsm_device_auth_key_cpu_us']} us CPU "  # type: ignore[index]
                        f"in the HSM vs {f['software_device_auth_key_cpu_us']} in software, "  # type: ignore[index]
                        f"database {f['database_cpu_us']} us CPU -> at best "  # type: ignore[index]
                        f"{f['ratio_cpu']} x direct CPU, rate ratio at most {f['ratio_rate']}",  # type: ignore[index]
                        flush=True,
                    )
        finally:
            token.close()
            service.terminate()
            service.wait(timeout=30)
        if args.split:
            system = system_costs(root)
            direct = direct_costs()
            for key, times in (PER_CARD if letters else PER_CARD_NO_LETTER).items():
                system[key] *= times
                direct[key] *= times
            split = {
                "system_us": {k: v * 1e6 for k, v in system.items()},
                "direct_us": {k: v * 1e6 for k, v in direct.items()},
            }
        records.close()

    result = {
        "cores": cores,
        "pin_source": args.pin_source,
        "service_workers": settings.workers,
        "chunk": args.chunk,
        "in_flight": args.in_flight,
        "keygen_threads": args.keygen_threads,
        "verify": args.verify,
        "runs": runs,
        "ratio_rate": _spread([float(str(r["ratio_rate"])) for r in runs]),
        "ratio_cpu": _spread([float(str(r["ratio_cpu"])) for r in runs]),
        "cards_per_second": _spread([float(str(r["cards_per_second"])) for r in runs]),
        "floor_ratio_cpu": _spread([float(r["floor"]["ratio_cpu"]) for r in runs]),  # type: ignore[index]
        "split": split,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"{len(runs)} run(s) of {args.cards} cards, {cores} cores, service workers "
        f"{settings.workers}, in flight {args.in_flight}, pin source {args.pin_source}, verify "
        f"{args.verify}"
    )
    print(f"cards/s:                       {result['cards_per_second']}")
    print(f"rate / direct on all cores:    {result['ratio_rate']}   (goal >= 0.7)")
    print(f"CPU per card / direct CPU:     {result['ratio_cpu']}   (goal <= 1.4)")
    print(f"  best this HSM and database allow: {result['floor_ratio_cpu']}")
    if split:
        print(f"{'per card (us)':18} {'system':>10} {'direct':>10}")
        for key in split["system_us"]:
            print(f"{key:18} {split['system_us'][key]:10.1f} {split['direct_us'][key]:10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
