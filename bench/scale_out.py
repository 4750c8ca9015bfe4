"""Benchmark: several sealing hosts on one PostgreSQL (issue 12, "Scale out").

    python bench/scale_out.py [--db URL] [--cards 2000] [--sealers 1,2,4] [--workers 1]

What it does:
1. one PostgreSQL: --db URL, else $SEALCARD_TEST_PG_URL, else a throwaway cluster
   (tools/pg_test_server.sh); a fresh schema for this run;
2. host 1: `issuer init --db URL`, `issuer hsm init`, `issuer hsm backup-seed` (2 of 2 shares);
   hosts 2..N: `issuer init` on the same database and `issuer hsm init --restore` from those
   shares: each host its own SoftHSM tokens, its own issuer HSM service and its own request
   key, the same seed and (made from the seed) the same issuer key, checked;
3. for each sealer count k: a new fabricated pack of --cards cards and as many orders, then k
   `sealcard issuer seal` processes at once, one per host; reports the cards per second of
   all of them together, the CPU per card of the sealers, the services and the PostgreSQL
   server (its postmaster and all its processes, from /proc), and checks that every order
   was sealed once with its own card and derivation element.

The database's cost per card is the PostgreSQL server's CPU per card (the part every host
shares) plus the sealers' time in the database (their commit points). On a 2-core machine
every extra host takes CPU from the others: expect flat throughput and read the database
cost, which is what limits scale-out on bigger machines. This is a script, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

# tools/issuer_stack.py, shared with tools/crash_resume.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from issuer_stack import (
    fresh_schema,
    issuer_argv,
    run_issuer,
    start_postgres,
    stop_issuer_hsm,
    stop_postgres,
    write_mailer_key,
)

from sealcard.issuer.db import Database
from sealcard.issuer.fake import import_fake_pack
from sealcard.issuer.records import Records

MAILER = "post"
USERS = 50


def cli(home: Path, *args: str, stdin: str | None = None) -> dict[str, object]:
    result = run_issuer(home, *args, stdin=stdin)
    if result.returncode != 0:
        raise SystemExit(f"issuer {' '.join(args)} failed: {result.stdout}{result.stderr}")
    payload: dict[str, object] = json.loads(result.stdout)
    return payload


def proc_cpu(pid: int, *, reaped: bool = True) -> float:
    """CPU seconds of a process, its live children and (``reaped``) the children it has
    already waited for (a PostgreSQL backend ends with its connection), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    total = ticks / os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += proc_cpu(int(child), reaped=reaped)
    return total


def seal_all(homes: list[Path], in_flight: int) -> tuple[int, float, float]:
    """`issuer seal` on each host at once: (cards sealed, seconds, CPU seconds of them all)."""
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    sealers = [
        subprocess.Popen(
            issuer_argv(home, "seal", "--in-flight", str(in_flight), "--json"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for home in homes
    ]
    outputs = [p.communicate() for p in sealers]
    seconds = time.perf_counter() - t0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (children.ru_utime - children0.ru_utime) + (children.ru_stime - children0.ru_stime)
    sealed = 0
    for proc, (out, err) in zip(sealers, outputs, strict=True):
        if proc.returncode != 0:
            raise SystemExit(f"a sealer failed: {out}{err}")
        sealed += int(json.loads(out)["sealed"])
    return sealed, seconds, cpu


def postmaster_pid(url: str) -> int | None:
    """The server of a tools/pg_test_server.sh cluster (socket DIR/sock, data DIR/data)."""
    host = parse_qs(urlparse(url).query).get("host", [""])[0]
    pid_file = Path(host).parent / "data" / "postmaster.pid"
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def issuer_key(home: Path) -> bytes:
    """The issuer public key (SPKI DER) of a host's issuer certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    certificate = x509.load_pem_x509_certificate((home / "hsm" / "issuer-cert.pem").read_bytes())
    return certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def add_orders(url: str, cards: int, run: int, rsa_pool: int) -> None:
    records = Records.open(url, "bench")
    with records.db:
        import_fake_pack(records, cards, f"SCALE-{run}", rsa_pool=rsa_pool)
        users = [records.add_user(f"User {run}.{i}", f"{i} Scale Street") for i in range(USERS)]
        per_user = -(-cards // USERS)
        left = cards
        for user in users:
            n = min(per_user, left)
            if n:
                records.request_orders(user.id, n, mailer_id=MAILER)
            left -= n


def check(url: str, expected: int) -> None:
    with Database(url) as db, db.transaction() as tx:
        counts = (
            tx.scalar("SELECT COUNT(*) FROM orders WHERE state = 'sealed'"),
            tx.scalar("SELECT COUNT(*) FROM sealed_blobs"),
            tx.scalar("SELECT COUNT(DISTINCT card_serial) FROM sealed_blobs"),
            tx.scalar("SELECT COUNT(DISTINCT derivation_index) FROM sealed_blobs"),
            tx.scalar("SELECT COUNT(*) FROM derivation_elements"),
            tx.scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'order.sealed'"),
        )
    if set(counts) != {expected}:
        raise SystemExit(f"invariants broken: {counts} (want {expected} each)")


def start_hosts(base: Path, homes: list[Path], db_url: str, workers: int) -> list[int]:
    """Host 1 made, hosts 2..N restored from its seed shares, each with its issuer HSM
    service started and the mailer added: the services' pids."""
    cli(homes[0], "init", "--db", db_url)
    cli(homes[0], "hsm", "init")
    shares = cli(
        homes[0],
        "hsm",
        "backup-seed",
        "--threshold",
        "2",
        "--shares",
        "2",
        "--format",
        "text",
        "--out-dir",
        str(base / "shares"),
    )["files"]
    restore = "".join(Path(str(f)).read_text() for f in shares)  # type: ignore[attr-defined]
    for home in homes[1:]:
        cli(home, "init", "--db", db_url)
        cli(home, "hsm", "init", "--restore", stdin=restore)
    if len({issuer_key(h) for h in homes}) != 1:
        raise SystemExit("the restored hosts do not share the issuer key")
    mailer = base / "mailer.pem"
    write_mailer_key(mailer)
    services: list[int] = []
    for home in homes:
        config = home / "config.toml"
        text = config.read_text().replace(
            "[issuer_hsm]\n", f"[issuer_hsm]\nworkers = {workers}\n", 1
        )
        config.write_text(text)
        services.append(int(str(cli(home, "hsm", "start")["pid"])))
        cli(home, "hsm", "mailer", "add", "--id", MAILER, "--key", str(mailer))
    return services


def measure(
    homes: list[Path],
    services: list[int],
    server: int | None,
    db_url: str,
    counts: list[int],
    *,
    cards: int,
    in_flight: int,
    rsa_pool: int,
    quiet: bool,
) -> list[dict[str, object]]:
    """One run for each sealer count (see the module doc); a line for each unless `quiet`."""
    results: list[dict[str, object]] = []
    sealed_so_far = 0
    for run, k in enumerate(counts):
        # what `issuer seal` costs with nothing to seal (start-up), to take off below
        _, _, idle_cpu = seal_all(homes[:k], in_flight)
        add_orders(db_url, cards, run, rsa_pool)
        db_cpu0 = proc_cpu(server) if server else 0.0
        svc_cpu0 = sum(proc_cpu(p) for p in services[:k])
        sealed, seconds, sealer_cpu = seal_all(homes[:k], in_flight)
        sealer_cpu -= idle_cpu
        svc_cpu = sum(proc_cpu(p) for p in services[:k]) - svc_cpu0
        db_cpu = (proc_cpu(server) - db_cpu0) if server else None
        sealed_so_far += sealed
        check(db_url, sealed_so_far)
        results.append(
            {
                "sealers": k,
                "cards": sealed,
                "seconds": round(seconds, 2),
                "cards_per_second": round(sealed / seconds, 1),
                "cpu_us_per_card": {
                    "sealers": round(sealer_cpu / sealed * 1e6, 1),
                    "services": round(svc_cpu / sealed * 1e6, 1),
                    "postgresql": None if db_cpu is None else round(db_cpu / sealed * 1e6, 1),
                },
                "load_average": round(os.getloadavg()[0], 2),
            }
        )
        if not quiet:
            r = results[-1]
            print(
                f"{k} sealer(s): {r['cards']} cards in {r['seconds']} s = "
                f"{r['cards_per_second']} cards/s; "
                f"CPU per card (us) {r['cpu_us_per_card']}; load {r['load_average']}",
                flush=True,
            )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default=os.environ.get("SEALCARD_TEST_PG_URL"))
    parser.add_argument("--cards", type=int, default=2000, help="cards per sealer count")
    parser.add_argument("--sealers", default="1,2,4")
    parser.add_argument("--workers", type=int, default=1, help="issuer HSM workers per host")
    parser.add_argument("--in-flight", type=int, default=2, help="chunks in flight per sealer")
    parser.add_argument("--rsa-pool", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    counts = [int(k) for k in args.sealers.split(",")]
    hosts = max(counts)

    base = Path(tempfile.mkdtemp(prefix="sealcard-scale-"))
    base.chmod(0o711)  # each host's issuer HSM service runs as its own user
    pg_dir = None
    url = args.db
    if not url:
        pg_dir = base / "pg"
        url = start_postgres(pg_dir)
    server = postmaster_pid(url)
    homes = [base / f"host{i + 1}" for i in range(hosts)]
    results: list[dict[str, object]] = []
    try:
        with fresh_schema(url, "scale") as db_url:  # dropped after the services stop
            try:
                services = start_hosts(base, homes, db_url, args.workers)
                results = measure(
                    homes,
                    services,
                    server,
                    db_url,
                    counts,
                    cards=args.cards,
                    in_flight=args.in_flight,
                    rsa_pool=args.rsa_pool,
                    quiet=args.json,
                )
            finally:
                for home in homes:
                    if (home / "config.toml").exists():
                        stop_issuer_hsm(home)
    finally:
        if pg_dir is not None:
            stop_postgres(pg_dir)
        shutil.rmtree(base, ignore_errors=True)
    if args.json:
        print(json.dumps({"cores": os.cpu_count(), "runs": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
