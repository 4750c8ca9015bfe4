"""Crash and resume suite (issue 11, suite 6): SIGKILL a real sealing run at random points,
again and again, then check that nothing was lost, duplicated or damaged.

    python tools/crash_resume.py                          # full size: 10,000 cards, 20 kills,
                                                          # SQLite and PostgreSQL
    python tools/crash_resume.py --cards 300 --kills 5 --db sqlite     # CI size

The whole stack runs as a user runs it: `sealcard issuer init`, `issuer hsm init` (SoftHSM2),
`issuer hsm start` (the issuer HSM service, its own user), `issuer hsm mailer add`, then
`sealcard issuer seal` started again and again and SIGKILLed after a random delay (from 0:
some kills land while it starts, most in the middle of a chunk: between commit points A and
B, during key generation, the HSM call or a commit). Every `--service-kill-every`-th kill goes
to the issuer HSM service instead (the sealer in flight then stops with a lost answer) and the
service is started again. When the kills are done, one more `issuer seal` finishes the job.

Checked at the end (any failure: exit 1):
- every order sealed exactly once: all orders `sealed`; one blob, one device authentication
  key, one PIN letter and one `order.sealed` audit entry per order;
- no derivation element used twice and none lost: as many elements as orders, the counter at
  that number, each element bound to its own order and user, each blob made at its order's
  element, its user public key the child of the published xpub at that index;
- no card paired twice; every blob's issuer signature valid and for its card (a sample is
  opened with the card's key: the user key inside matches the xpub);
- the database's own checks: SQLite `PRAGMA integrity_check` and `foreign_key_check`;
  PostgreSQL `amcheck` (`bt_index_check` with heapallindexed on every index, `verify_heapam`
  on every table) where the extension is available, and consistency queries on both;
- the audit log's hash chain: `sealcard issuer audit checkpoint` then `issuer audit verify`
  (every entry chained, none lost to a kill, the last checkpoint at the end of the log).

Prints the counts (kills, where they landed, resumed orders, elapsed) as text or --json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from issuer_stack import (
    fresh_schema,
    issuer_argv,
    run_issuer,
    start_postgres,
    stop_issuer_hsm,
    stop_postgres,
    write_mailer_key,
)

from sealcard.crypto import sealed_blob
from sealcard.crypto.bip32 import ExtendedPublicKey
from sealcard.errors import SealcardError
from sealcard.issuer.db import Database, Dialect
from sealcard.issuer.fake import FakePack, fabricate_pack
from sealcard.issuer.records import Records

UNAVAILABLE = 3  # the exit code of a command whose service does not answer (docs/cli.md)
MAILER = "post"
USERS = 97
OPENED_SAMPLE = 50


@dataclass
class Counts:
    """What a suite run did and saw."""

    database: str
    cards: int
    chunk: int
    kills: int = 0
    sealer_kills: int = 0
    service_kills: int = 0
    kills_before_any_commit: int = 0  # the run was killed before its first commit point B
    kills_leaving_reserved_orders: int = 0  # killed between a commit point A and its B
    runs: int = 0
    runs_finished: int = 0
    resumed_orders: int = 0
    sealed: int = 0
    blobs_verified: int = 0
    blobs_opened: int = 0
    integrity_checks: list[str] = field(default_factory=list)
    audit_entries: int = 0  # entries `issuer audit verify` found chained and intact
    seconds: float = 0.0


class SuiteFailedError(Exception):
    """An invariant does not hold, or the suite could not do what it was asked."""


def _sealcard(home: Path, *args: str, stdin: str | None = None) -> dict[str, Any]:
    result = run_issuer(home, *args, stdin=stdin)
    if result.returncode != 0:
        raise SuiteFailedError(f"issuer {' '.join(args)}: {result.stdout}{result.stderr}")
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


def _count(url: str, sql: str, params: tuple[Any, ...] = ()) -> int:
    # a read that waits for no writer: a poll behind SQLite's writer lock could sleep through
    # a whole sealing run and miss every moment to kill it
    with Database(url) as db, db.read_transaction() as tx:
        return int(tx.scalar(sql, params))


def prepare(home: Path, db_url: str, cards: int, pack: FakePack) -> None:
    """An issuer home with its HSMs, a mailer, a pack and one order per card."""
    _sealcard(home, "init", "--db", db_url)
    _sealcard(home, "hsm", "init")
    _sealcard(home, "hsm", "start")
    mailer = home.parent / "mailer.pem"
    write_mailer_key(mailer)
    _sealcard(home, "hsm", "mailer", "add", "--id", MAILER, "--key", str(mailer))
    records = Records.open(_sealcard_url(home), "crash-suite")
    with records.db:
        records.import_pack(pack.pack_serial, pack.cards, source="fake")
        users = [records.add_user(f"User {i}", f"{i} Crash Road") for i in range(USERS)]
        for i in range(cards):
            records.request_orders(users[i % USERS].id, mailer_id=MAILER)


def _sealcard_url(home: Path) -> str:
    from sealcard.issuer.config import load_home

    return load_home(home).database_url


def kill_loop(
    home: Path,
    url: str,
    counts: Counts,
    kills: int,
    rng: random.Random,
    jitter: float,
    service_kill_every: int,
) -> None:
    """Start `issuer seal` again and again and SIGKILL it (or the service) at random: after 0
    to 2 of its commit points B (0: while it starts or in its first chunk), then a random
    0..`jitter` s more (at most the time one chunk was seen to take), which lands anywhere in
    the next chunk."""
    argv = issuer_argv(home, "seal", "--chunk-size", str(counts.chunk), "--json")
    sealed_sql = "SELECT COUNT(*) FROM orders WHERE state = 'sealed'"
    pid_file = home / "run" / "issuer-hsm.pid"
    chunk_seconds = jitter
    while counts.kills < kills:
        sealed_before = _count(url, sealed_sql)
        if sealed_before == counts.cards:
            raise SuiteFailedError(
                f"every order was sealed after {counts.kills} of {kills} kills: raise --cards"
            )
        target = sealed_before + rng.randint(0, 2) * counts.chunk
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # noqa: S603 - our own interpreter and module
        counts.runs += 1
        # the kill lands within one chunk after the target: the random delay is capped by the
        # time a chunk was last seen to take (in this run or an earlier one), so a fast machine
        # does not seal the rest of the orders during the delay
        last_seen, last_change = sealed_before, time.monotonic()
        while proc.poll() is None and last_seen < target:
            time.sleep(0.005)
            seen = _count(url, sealed_sql)
            if seen != last_seen:
                now = time.monotonic()
                if last_seen != sealed_before:  # a whole chunk between two commits
                    chunk_seconds = min(jitter, now - last_change)
                last_seen, last_change = seen, now
        time.sleep(rng.uniform(0.0, chunk_seconds))
        hit_service = service_kill_every > 0 and (counts.kills + 1) % service_kill_every == 0
        if proc.poll() is None:
            if hit_service:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            else:
                proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=600)
        if proc.returncode == 0:  # it finished before the kill
            counts.runs_finished += 1
            counts.resumed_orders += int(json.loads(out)["resumed"])
            continue
        if hit_service:
            said = out + err  # with --json the error is JSON on stdout
            # exit 3 (docs/cli.md: the issuer HSM service did not answer)
            if proc.returncode != UNAVAILABLE or not any(
                words in said for words in ("answer was lost", "does not answer", "cannot send")
            ):
                raise SuiteFailedError(f"the sealer failed otherwise than by the service: {said}")
            counts.service_kills += 1
            _sealcard(home, "hsm", "start")  # its supervisor starts it again
        elif proc.returncode == -signal.SIGKILL:
            counts.sealer_kills += 1
        else:
            raise SuiteFailedError(f"the sealer failed by itself: {out}{err}")
        counts.kills += 1
        if _count(url, sealed_sql) == sealed_before:
            counts.kills_before_any_commit += 1
        reserved = "SELECT COUNT(*) FROM orders WHERE state = 'card_assigned'"
        if _count(url, reserved) > 0:
            counts.kills_leaving_reserved_orders += 1


def finish(home: Path, counts: Counts) -> None:
    result = _sealcard(home, "seal", "--chunk-size", str(counts.chunk))
    counts.runs += 1
    counts.runs_finished += 1
    counts.resumed_orders += int(result["resumed"])


def check_records(url: str, home: Path, pack: FakePack, counts: Counts, rng: random.Random) -> None:
    """Every invariant of the module doc (raises SuiteFailedError)."""
    n = counts.cards
    with Database(url) as db, db.transaction() as tx:
        expect = {
            "orders sealed": tx.scalar("SELECT COUNT(*) FROM orders WHERE state = 'sealed'"),
            "orders": tx.scalar("SELECT COUNT(*) FROM orders"),
            "blobs": tx.scalar("SELECT COUNT(*) FROM sealed_blobs"),
            "device auth keys": tx.scalar("SELECT COUNT(*) FROM device_auth_keys"),
            "PIN letters": tx.scalar("SELECT COUNT(*) FROM pin_letters"),
            "derivation elements": tx.scalar("SELECT COUNT(*) FROM derivation_elements"),
            "elements bound to orders": tx.scalar(
                "SELECT COUNT(DISTINCT order_id) FROM derivation_elements"
            ),
            "derivation counter": tx.scalar(
                "SELECT value FROM counters WHERE name = 'derivation_index'"
            ),
            "distinct cards": tx.scalar("SELECT COUNT(DISTINCT card_serial) FROM orders"),
            "assigned cards": tx.scalar("SELECT COUNT(*) FROM cards WHERE status = 'assigned'"),
            "distinct blob indexes": tx.scalar(
                "SELECT COUNT(DISTINCT derivation_index) FROM sealed_blobs"
            ),
            "audit order.card_assigned": tx.scalar(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'order.card_assigned'"
            ),
            "audit order.sealed": tx.scalar(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'order.sealed'"
            ),
            "orders, element, blob, key, letter agree": tx.scalar(
                "SELECT COUNT(*) FROM orders o"
                " JOIN derivation_elements d ON d.idx = o.derivation_index"
                " JOIN sealed_blobs s ON s.order_id = o.id"
                " JOIN device_auth_keys k ON k.order_id = o.id"
                " JOIN pin_letters l ON l.order_id = o.id"
                " WHERE d.order_id = o.id AND d.user_id = o.user_id"
                " AND s.derivation_index = o.derivation_index AND s.card_serial = o.card_serial"
                " AND k.card_serial = o.card_serial"
            ),
        }
        rows = tx.all(
            "SELECT s.card_serial, s.blob, s.user_public_key, d.idx FROM sealed_blobs s"
            " JOIN derivation_elements d ON d.idx = s.derivation_index"
        )
        max_index = tx.scalar("SELECT MAX(idx) FROM derivation_elements")
    wrong = {k: v for k, v in expect.items() if int(v) != n}
    if wrong or int(max_index) != n - 1:
        raise SuiteFailedError(f"expected {n} of each (max index {n - 1}): {wrong}, {max_index}")
    counts.sealed = n
    certificate = x509.load_pem_x509_certificate((home / "hsm" / "issuer-cert.pem").read_bytes())
    issuer_key = certificate.public_key()
    assert isinstance(issuer_key, ec.EllipticCurvePublicKey)
    xpub = ExtendedPublicKey.from_xpub(str(_sealcard(home, "hsm", "xpub")["xpub"]))
    opened = set(rng.sample(range(len(rows)), min(OPENED_SAMPLE, len(rows))))
    for position, (serial_hex, blob, user_public_key, index) in enumerate(rows):
        serial = bytes.fromhex(serial_hex)
        parsed = sealed_blob.verify_signature(bytes(blob), issuer_key)
        if parsed.serial != serial:
            raise SuiteFailedError(f"the blob of card {serial_hex} is for another card")
        expected_public = xpub.child(int(index)).public_key
        if bytes(user_public_key) != expected_public:
            raise SuiteFailedError(f"card {serial_hex}: not the user key of element {index}")
        counts.blobs_verified += 1
        if position in opened:
            payload = sealed_blob.open_blob(
                bytes(blob), serial, pack.device_keys[serial], issuer_key
            )
            from coincurve import PrivateKey

            if PrivateKey(payload.user_private_key).public_key.format() != expected_public:
                raise SuiteFailedError(f"card {serial_hex}: the sealed user key is not the xpub's")
            counts.blobs_opened += 1


def check_audit_chain(home: Path, counts: Counts) -> None:
    """The audit log after the kills, as an operator checks it: sign a checkpoint of its end
    in the issuer-system HSM, then verify every entry's chain link and the checkpoints."""
    _sealcard(home, "audit", "checkpoint")
    result = _sealcard(home, "audit", "verify")  # exit 1 (SuiteFailedError) if broken
    if not result["intact"] or result["unprotected_tail"] != 0:
        raise SuiteFailedError(f"audit log: {result}")
    counts.audit_entries = int(result["entries"])


def check_database(url: str, counts: Counts) -> None:
    """The engine's own integrity checks."""
    with Database(url) as db:
        if db.dialect is Dialect.SQLITE:
            with db.transaction() as tx:
                integrity = [r[0] for r in tx.all("PRAGMA integrity_check")]
                foreign = tx.all("PRAGMA foreign_key_check")
            if integrity != ["ok"] or foreign:
                raise SuiteFailedError(f"SQLite integrity: {integrity}, foreign keys: {foreign}")
            counts.integrity_checks += [
                "PRAGMA integrity_check: ok",
                "PRAGMA foreign_key_check: ok",
            ]
            return
        with db.transaction() as tx:
            available = tx.scalar(
                "SELECT COUNT(*) FROM pg_available_extensions WHERE name = 'amcheck'"
            )
        if available:
            with db.transaction() as tx:
                tx.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
                # the extension lives in the schema of whoever created it first
                where = tx.scalar(
                    "SELECT n.nspname FROM pg_extension e"
                    " JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'amcheck'"
                )
                indexes = tx.all(
                    "SELECT ic.oid::regclass::text FROM pg_index i"
                    " JOIN pg_class ic ON ic.oid = i.indexrelid"
                    " JOIN pg_am am ON am.oid = ic.relam"
                    " JOIN pg_namespace n ON n.oid = ic.relnamespace"
                    " WHERE n.nspname = current_schema() AND am.amname = 'btree'"
                )
                for (index,) in indexes:
                    tx.execute(f'SELECT "{where}".bt_index_check(?::regclass, true)', (index,))
                tables = tx.all(
                    "SELECT c.oid::regclass::text FROM pg_class c"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = current_schema() AND c.relkind = 'r'"
                )
                damaged = [
                    (table, row)
                    for (table,) in tables
                    for row in tx.all(
                        f'SELECT * FROM "{where}".verify_heapam(?::regclass)',  # noqa: S608 - a schema name from the catalog
                        (table,),
                    )
                ]
            if damaged:
                raise SuiteFailedError(f"PostgreSQL verify_heapam: {damaged[:5]}")
            counts.integrity_checks += [
                f"amcheck bt_index_check(heapallindexed) on {len(indexes)} indexes: ok",
                f"amcheck verify_heapam on {len(tables)} tables: ok",
            ]
        with db.transaction() as tx:
            orphans = tx.scalar(
                "SELECT (SELECT COUNT(*) FROM sealed_blobs s"
                "  LEFT JOIN orders o ON o.id = s.order_id WHERE o.id IS NULL)"
                " + (SELECT COUNT(*) FROM derivation_elements d LEFT JOIN orders o"
                "  ON o.id = d.order_id WHERE d.order_id IS NOT NULL AND o.id IS NULL)"
                " + (SELECT COUNT(*) FROM orders o LEFT JOIN cards c ON c.serial = o.card_serial"
                "  WHERE o.card_serial IS NOT NULL AND c.serial IS NULL)"
            )
        if orphans:
            raise SuiteFailedError(f"PostgreSQL: {orphans} rows point at nothing")
        counts.integrity_checks.append("consistency queries (no dangling references): ok")


def run_suite(
    base: Path,
    db_url: str,
    cards: int,
    kills: int,
    chunk: int,
    seed: int,
    jitter: float,
    service_kill_every: int,
) -> Counts:
    rng = random.Random(seed)  # noqa: S311 - where to kill, not a secret
    counts = Counts(database=Database(db_url).dialect.value, cards=cards, chunk=chunk)
    home = base / "home"
    pack = fabricate_pack(cards, "CRASH-SUITE", rsa_pool=min(50, cards))
    started = time.perf_counter()
    prepare(home, db_url, cards, pack)
    url = _sealcard_url(home)
    try:
        kill_loop(home, url, counts, kills, rng, jitter, service_kill_every)
        finish(home, counts)
        check_records(url, home, pack, counts, rng)
        check_database(url, counts)
        check_audit_chain(home, counts)
    finally:
        stop_issuer_hsm(home)
    counts.seconds = round(time.perf_counter() - started, 1)
    return counts


def _postgres(base: Path, given: str | None) -> tuple[str, Path | None]:
    if given:
        return given, None
    env = os.environ.get("SEALCARD_TEST_PG_URL")
    if env:
        return env, None
    pg_dir = base / "pg"
    return start_postgres(pg_dir), pg_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cards", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--chunk", type=int, default=128, help="orders per commit point")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--pg-url",
        default=None,
        help="default $SEALCARD_TEST_PG_URL, else a throwaway cluster (tools/pg_test_server.sh)",
    )
    parser.add_argument(
        "--jitter",
        type=float,
        default=0.1,
        help="after 0-2 commit points, kill within a random 0..N s more",
    )
    parser.add_argument(
        "--service-kill-every",
        type=int,
        default=5,
        help="every N-th kill hits the issuer HSM service (0: never)",
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else secrets.randbits(32)
    base = Path(tempfile.mkdtemp(prefix="sealcard-crash-"))
    base.chmod(0o711)  # the issuer HSM service runs as its own user
    results: list[Counts] = []
    pg_dir: Path | None = None
    failure: str | None = None
    try:
        for engine in ("sqlite", "postgresql") if args.db == "both" else (args.db,):
            folder = base / engine
            folder.mkdir()
            folder.chmod(0o711)
            database: AbstractContextManager[str]
            if engine == "sqlite":
                database = nullcontext(f"sqlite:///{folder / 'issuer.db'}")
            else:
                server, pg_dir = _postgres(base, args.pg_url)
                database = fresh_schema(server, "crash")  # dropped after the run
            with database as url:
                results.append(
                    run_suite(
                        folder,
                        url,
                        args.cards,
                        args.kills,
                        args.chunk,
                        seed,
                        args.jitter,
                        args.service_kill_every,
                    )
                )
    except (SuiteFailedError, SealcardError) as exc:
        failure = str(exc)
    finally:
        if pg_dir is not None:
            stop_postgres(pg_dir)
        shutil.rmtree(base, ignore_errors=True)
    if args.json:
        print(
            json.dumps(
                {"seed": seed, "failure": failure, "runs": [asdict(r) for r in results]}, indent=2
            )
        )
    else:
        for r in results:
            print(
                f"{r.database}: {r.cards} cards, {r.kills} kills ({r.sealer_kills} of the sealer,"
                f" {r.service_kills} of the issuer HSM service; {r.kills_before_any_commit}"
                f" before the run's first commit, {r.kills_leaving_reserved_orders} leaving"
                f" reserved, unsealed orders), {r.runs} sealing runs, {r.resumed_orders} orders"
                f" resumed; {r.sealed} sealed once each, {r.blobs_verified} blob signatures"
                f" checked, {r.blobs_opened} blobs opened; {'; '.join(r.integrity_checks)};"
                f" audit log: {r.audit_entries} entries chained and signed; {r.seconds} s"
            )
        print(f"seed {seed}: " + ("FAILED: " + failure if failure else "every check passed"))
    return 1 if failure else 0


if __name__ == "__main__":
    sys.exit(main())
