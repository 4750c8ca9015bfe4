"""Batch sealing: from requested orders and a stock of cards to sealed blobs and PIN letters.

The state machine is built so that a SIGKILL at any instant, followed by a re-run, loses
nothing and duplicates nothing. There are exactly two commit points per chunk of orders:

**A. reserve** (one transaction): take the oldest `requested` orders and as many unused,
verified cards (oldest pack first); allocate one derivation element per order from the
monotonic counter and bind it to the order's user and the order; mark the cards `assigned`;
move the orders to `card_assigned` (with card serial and derivation index). After A commits,
order, card and derivation element belong together for good. Before A commits, nothing of
it exists (the counter step rolls back with the rest), and nothing has been sent anywhere.

Between A and B, with nothing written: generate one device authentication key pair per card
in the issuer-system HSM (a session object, leaves the HSM only wrapped), and send the chunk to
the issuer HSM service (`seal_batch`), which derives the user key, makes PIN and PUK, seals
the blob and the PIN letter.

**B. store** (one transaction): store the wrapped device authentication keys, the sealed
blobs, the user public keys and the PIN letters, and move the orders to `sealed`, only if
every one of them is still `card_assigned` (else nothing is stored). An order the issuer HSM
refused (e.g. its mailer is unknown to this HSM) is held in the same transaction: it stays
`card_assigned` with the HSM's reason, later runs skip it, and an operator retries or
cancels it (`issuer order retry|cancel`). One bad order never stops the others.

A crash before B leaves the chunk in `card_assigned`. A re-run first resumes every
`card_assigned` order with the card and derivation element bound at A, so no element is ever
allocated twice for an order and no card is paired twice. What the lost attempt produced was
never stored or sent: its device authentication key existed only as an HSM session object,
its blob and letter only in memory; the re-run seals again (same user key, since it derives
from the same element; fresh PIN, PUK and device authentication key), and B commits once.
The unique constraints (card per order, derivation index per order, blob per order and per
card) are the database's second line of defence.

The device authentication keys and the issuer HSM call of the chunks in flight (two by default,
one per service worker) run in worker threads while the main thread reserves the next chunk
and stores the oldest (commit points stay in the main thread, in order).
"""

from __future__ import annotations

import fcntl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import ec

from sealcard.crypto import sealed_blob
from sealcard.errors import VerificationError
from sealcard.hsm.issuer_client import SealRequest, SealResult
from sealcard.issuer.db import Database, DatabaseUrl, Dialect
from sealcard.issuer.errors import RecordNotFoundError, SealingError
from sealcard.issuer.records import HeldOrder, Records, SealedItem, SealWork

#: Orders per HSM round trip and per commit.
DEFAULT_CHUNK_SIZE = 256
#: Threads for device authentication key generation: this machine has 2 cores, and the issuer
#: HSM service needs CPU too; measured best at 1 with the hsm layer of e3d8ff8 (893 vs 789
#: cards/s at 2, bench/seal_batch.py).
DEFAULT_KEYGEN_THREADS = 1
#: Chunks whose keys are made and that the issuer HSM seals at the same time: one per
#: service worker (one per core) keeps every core busy (docs/performance.md).
DEFAULT_CHUNKS_IN_FLIGHT = 2
_SOLE_SEALER_POLL_S = 0.05
#: Length of a compressed secp256k1 public key.
USER_PUBLIC_KEY_LEN = 33

#: Called after each commit point B with (orders sealed or held so far in this run, planned).
ProgressCallback = Callable[[int, int], None]


class DeviceAuthKeyMaker(Protocol):
    """Device authentication keys from the issuer-system HSM (`hsm.system_hsm.DeviceAuthKeys`)."""

    def generate_many(self, count: int, threads: int = 1) -> list[tuple[bytes, bytes]]:
        """`count` fresh key pairs: (public point, 65 bytes; private key wrapped by the HSM),
        made on up to `threads` PKCS#11 sessions at once."""
        ...


class SealService(Protocol):
    """The issuer HSM (`sealcard.hsm.issuer_client.IssuerHsmClient`)."""

    def seal_batch(self, requests: Sequence[SealRequest]) -> list[SealResult]:
        """Seal one chunk of cards."""
        ...


@dataclass
class SealTimings:
    """Where the time of a run went (seconds, wall clock, summed over chunks)."""

    reserve: float = 0.0  # commit point A
    fetch: float = 0.0  # reading the reserved work
    device_auth_keys: float = 0.0  # key generation and wrapping in the issuer-system HSM
    hsm_wait: float = 0.0  # main thread waiting for the issuer HSM (not hidden by the pipeline)
    hsm_calls: float = 0.0  # total time inside seal_batch (in the worker thread)
    store: float = 0.0  # commit point B
    # CPU seconds of the sealer's main thread in the database (reads, commit points A and B):
    # the database's own share of a card, apart from the threads' waits (bench/seal_batch.py)
    database_cpu: float = 0.0


@dataclass
class SealReport:
    """What one run of `seal_orders` did."""

    sealed: int = 0
    resumed: int = 0  # of `sealed`: orders a previous, interrupted run had reserved
    held: list[HeldOrder] = field(default_factory=list)  # refused by the HSM in this run
    chunks: int = 0
    planned: int = 0
    seconds: float = 0.0
    stopped: str = "done"  # "done" | "no_cards" | "limit"
    timings: SealTimings = field(default_factory=SealTimings)

    @property
    def per_second(self) -> float:
        """Sealed orders per second."""
        return self.sealed / self.seconds if self.seconds > 0 else 0.0


class _Claim:
    """A transaction that holds a chunk's orders locked (FOR UPDATE) from the moment they are
    fetched until commit point B, on a connection of its own (PostgreSQL). A sealer that is
    killed loses its connection, PostgreSQL rolls the transaction back and the orders, still
    `card_assigned`, are free for any sealer to resume."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._stack = ExitStack()
        self.tx = self._stack.enter_context(db.transaction())

    def commit(self) -> None:
        self._stack.close()

    def roll_back(self) -> None:
        error = SealingError("rolled back")
        self._stack.__exit__(type(error), error, None)


class _Claims:
    """One connection per chunk in flight, each holding its chunk's orders locked (PostgreSQL:
    N sealers on one database never work on the same order; module doc, "Several sealers")."""

    def __init__(self, url: str, size: int) -> None:
        self.url = url
        self.size = size
        self._free: list[Database] = []
        self._all: list[Database] = []
        self._open: list[_Claim] = []

    @classmethod
    @contextmanager
    def for_database(cls, db: Database, chunks_in_flight: int) -> Iterator[_Claims | None]:
        """Claims on PostgreSQL; None on SQLite (one sealer at a time: `_sole_sealer`)."""
        if db.dialect is not Dialect.POSTGRES:
            yield None
            return
        claims = cls(db.url, chunks_in_flight + 1)
        try:
            yield claims
        finally:
            for claim in list(claims._open):  # an error stopped the run: release the locks
                claim.roll_back()
            for conn in claims._all:
                conn.close()

    def open(self) -> _Claim:
        if self._free:
            db = self._free.pop()
        else:
            db = Database(self.url)
            self._all.append(db)
        claim = _Claim(db)
        self._open.append(claim)
        return claim

    def commit(self, claim: _Claim) -> None:
        claim.commit()
        self._done(claim)

    def close(self, claim: _Claim) -> None:
        """Nothing claimed: end the transaction (it changed nothing)."""
        claim.commit()
        self._done(claim)

    def _done(self, claim: _Claim) -> None:
        self._open.remove(claim)
        self._free.append(claim.db)


@contextmanager
def _sole_sealer(db: Database, wait_s: float = 0.0) -> Iterator[None]:
    """SQLite: one sealer per database file at a time (an exclusive lock on a file beside it);
    another one is refused, after waiting up to `wait_s` for the lock (an activation's seal of
    one order waits for another's). PostgreSQL: nothing (sealers claim orders with row locks)."""
    if db.dialect is not Dialect.SQLITE:
        yield
        return
    target = DatabaseUrl.parse(db.url).target
    if target == ":memory:":
        yield
        return
    path = Path(target + ".sealer-lock")
    deadline = time.monotonic() + wait_s
    with path.open("a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise SealingError(
                        f"another sealer is sealing with {target}: SQLite takes one sealer at a"
                        " time (several sealing hosts need PostgreSQL)"
                    ) from None
                time.sleep(_SOLE_SEALER_POLL_S)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class _Chunk:
    work: list[SealWork]
    result: Future[tuple[list[tuple[bytes, bytes]], list[SealResult]]]  # keys, HSM results
    resumed: bool
    claim: _Claim | None = None


def _request(w: SealWork, auth_public: bytes) -> SealRequest:
    return SealRequest(
        order_id=str(w.order_id),
        card_serial=w.card_serial,
        device_public_key_der=w.device_public_key_der,
        device_auth_public_key=auth_public,
        derivation_path=w.derivation_path,
        user_name=w.user_name,
        user_address=w.user_address,
        pin_source=w.pin_source,
        mailer_id=w.mailer_id,
    )


def _check_results(
    work: Sequence[SealWork],
    keys: Sequence[tuple[bytes, bytes]],
    results: Sequence[SealResult],
    issuer_public_key: ec.EllipticCurvePublicKey | None,
    verify_every_blob: bool = False,
) -> tuple[list[SealedItem], list[HeldOrder]]:
    """What to store at commit point B: the sealed items, and the orders the HSM refused (they
    are held with its reason; the rest of the chunk is stored). An answer that does not match
    the request (count, order, a blob for another card, a bad signature) is a fault of the HSM
    or its configuration, not of one order: SealingError, nothing of the chunk is stored.

    With `issuer_public_key` the issuer signature of the chunk's first blob is checked (of
    every blob with `verify_every_blob`): see `seal_orders` for why one per chunk suffices."""
    if len(results) != len(work):
        raise SealingError(f"the issuer HSM answered {len(results)} results for {len(work)}")
    items: list[SealedItem] = []
    held: list[HeldOrder] = []
    check_next = issuer_public_key is not None
    for w, (auth_pub, wrapped), r in zip(work, keys, results, strict=True):
        if r.order_id != str(w.order_id):
            raise SealingError(f"the issuer HSM answered order {r.order_id} for {w.order_id}")
        if r.refusal is not None:
            held.append(HeldOrder(w.order_id, str(r.refusal)))
            continue
        if len(r.user_public_key) != USER_PUBLIC_KEY_LEN:
            raise SealingError(f"order {w.order_id}: user public key is not 33 bytes")
        try:
            parsed = sealed_blob.parse(r.sealed_blob)
            if check_next and issuer_public_key is not None:
                sealed_blob.verify_signature(parsed, issuer_public_key)
                check_next = verify_every_blob
        except (sealed_blob.SealedBlobError, VerificationError) as exc:
            raise SealingError(f"order {w.order_id}: bad sealed blob from the HSM: {exc}") from exc
        if parsed.serial != w.card_serial:
            raise SealingError(
                f"order {w.order_id}: the blob is not for card {w.card_serial.hex()}"
            )
        if w.pin_source == "hsm" and r.pin_letter is None:
            raise SealingError(f"order {w.order_id}: the issuer HSM made no PIN letter")
        items.append(
            SealedItem(
                order_id=w.order_id,
                card_serial=w.card_serial,
                derivation_index=w.derivation_index,
                device_auth_public_key=auth_pub,
                device_auth_wrapped_key=wrapped,
                sealed_blob=r.sealed_blob,
                user_public_key=r.user_public_key,
                pin_letter=r.pin_letter,
                mailer_id=w.mailer_id,
            )
        )
    return items, held


def seal_orders(
    records: Records,
    auth_keys: DeviceAuthKeyMaker,
    hsm: SealService,
    *,
    pack_serial: str | None = None,
    order_ids: Sequence[int] | None = None,
    limit: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: ProgressCallback | None = None,
    issuer_public_key: ec.EllipticCurvePublicKey | None = None,
    keygen_threads: int = DEFAULT_KEYGEN_THREADS,
    chunks_in_flight: int = DEFAULT_CHUNKS_IN_FLIGHT,
    verify_every_blob: bool = False,
    wait_for_sealer_s: float = 0.0,
) -> SealReport:
    """Seal requested orders (oldest first) with cards from the stock (oldest pack first).

    First resumes orders an interrupted run left in `card_assigned`, then reserves new ones.
    `pack_serial` restricts the cards to one pack, `order_ids` the orders to these, `limit` the
    number sealed in this run. Returns when every eligible order is sealed or the cards run out
    (`report.stopped == "no_cards"`). Safe to kill at any moment and run again (module doc).

    `chunks_in_flight` chunks have their device authentication keys made and are sealed by the
    issuer HSM at once (each on its own connection, so several service workers are busy) while
    this thread reserves and stores; `keygen_threads` PKCS#11 sessions make one chunk's keys.

    With `issuer_public_key`, the issuer signature of one blob per chunk (the first) is checked
    before the chunk is stored; `verify_every_blob` checks them all (about 0.1 ms per card).
    One per chunk is enough: the reply that carries the blobs is itself signed by the issuer
    key and bound to its request (the client checks both), so the blobs are the issuer HSM's,
    unaltered; what a blob's own check adds is catching the HSM signing with a wrong key or
    over wrong bytes, a fault of its build or configuration that one blob shows as well as all.
    A blob with a bad signature that slipped through would be refused by its card, which checks
    the signature before anything else (the order is then reissued); it could not harm it.
    Each blob's layout and card serial are still checked.

    On SQLite one sealer works at a time: another run is refused (SealingError) unless the
    first ends within `wait_for_sealer_s` (activation waits; a batch does not).
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    if chunks_in_flight < 1:
        raise ValueError("chunks_in_flight must be at least 1")
    if limit is not None and limit < 0:
        raise ValueError("limit must not be negative")
    if pack_serial is not None and not records.pack_exists(pack_serial):
        raise RecordNotFoundError(f"no pack {pack_serial}")
    ids = None if order_ids is None else sorted(set(order_ids))
    assigned, requested, available = records.count_pending(pack_serial=pack_serial, order_ids=ids)
    planned = assigned + min(requested, available)
    if limit is not None:
        planned = min(planned, limit)
    report = SealReport(planned=planned)
    timings = report.timings
    started = time.perf_counter()
    budget = planned if limit is None else limit

    def fetch(claim: _Claim | None, limit: int, own: bool = False, **where: Any) -> list[SealWork]:
        """Reserved work; with a claim, locked in the claim's transaction (others skip it).
        `own`: orders this run has just reserved, waited for if another transaction holds
        them for a moment (`Records.assigned_work`)."""
        if claim is not None:
            return records.assigned_work(claim.tx, limit, lock=True, wait_for_locked=own, **where)
        with records.db.transaction() as tx:
            return records.assigned_work(tx, limit, **where)

    def chunks() -> Iterator[tuple[list[SealWork], bool, _Claim | None]]:
        nonlocal budget
        after = 0
        while budget > 0:  # 1. resume what an interrupted run reserved
            t0, c0 = time.perf_counter(), time.thread_time()
            claim = claims.open() if claims is not None else None
            work = fetch(
                claim,
                min(chunk_size, budget),
                after_order_id=after,
                pack_serial=pack_serial,
                order_ids=ids,
            )
            timings.fetch += time.perf_counter() - t0
            timings.database_cpu += time.thread_time() - c0
            if not work:
                if claims is not None and claim is not None:
                    claims.close(claim)
                break
            after = work[-1].order_id
            budget -= len(work)
            yield work, True, claim
        while budget > 0 or limit is None:  # 2. reserve new pairs (commit point A)
            t0, c0 = time.perf_counter(), time.thread_time()
            with records.db.transaction() as tx:
                reserved = records.reserve(
                    tx,
                    min(chunk_size, budget) if limit is not None else chunk_size,
                    pack_serial=pack_serial,
                    order_ids=ids,
                )
            t1 = time.perf_counter()
            timings.reserve += t1 - t0
            if not reserved:
                _, still_requested, _ = records.count_pending(order_ids=ids)
                report.stopped = "no_cards" if still_requested else "done"
                return
            # Claimed right after A: an order another sealer's resume took in between is its.
            claim = claims.open() if claims is not None else None
            work = fetch(claim, len(reserved), own=True, order_ids=reserved)
            timings.fetch += time.perf_counter() - t1
            timings.database_cpu += time.thread_time() - c0
            budget -= len(work)
            if not work and claims is not None and claim is not None:
                claims.close(claim)
                continue
            yield work, False, claim
        report.stopped = "limit"

    def keys_and_seal(
        work: list[SealWork],
    ) -> tuple[list[tuple[bytes, bytes]], list[SealResult]]:
        t0 = time.perf_counter()
        keys = auth_keys.generate_many(len(work), threads=keygen_threads)
        if len(keys) != len(work):
            raise SealingError("the issuer-system HSM made the wrong number of keys")
        t1 = time.perf_counter()
        requests = [_request(w, k[0]) for w, k in zip(work, keys, strict=True)]
        results = hsm.seal_batch(requests)
        with timing_lock:
            timings.device_auth_keys += t1 - t0
            timings.hsm_calls += time.perf_counter() - t1
        return keys, results

    def store(chunk: _Chunk) -> None:
        t0 = time.perf_counter()
        keys, results = chunk.result.result()
        t1 = time.perf_counter()
        timings.hsm_wait += t1 - t0
        items, held = _check_results(
            chunk.work, keys, results, issuer_public_key, verify_every_blob
        )
        c0 = time.thread_time()
        if chunk.claim is not None:  # commit point B in the claim's transaction
            records.store_sealed(chunk.claim.tx, items)
            records.hold_orders(chunk.claim.tx, held)
            assert claims is not None
            claims.commit(chunk.claim)
        else:
            with records.db.transaction() as tx:  # commit point B
                records.store_sealed(tx, items)
                records.hold_orders(tx, held)
        timings.database_cpu += time.thread_time() - c0
        timings.store += time.perf_counter() - t1
        report.sealed += len(items)
        report.held.extend(held)
        report.chunks += 1
        if chunk.resumed:
            report.resumed += len(items)
        if progress is not None:
            progress(report.sealed + len(report.held), planned)

    timing_lock = threading.Lock()
    inflight: deque[_Chunk] = deque()
    with (
        _sole_sealer(records.db, wait_for_sealer_s),
        _Claims.for_database(records.db, chunks_in_flight) as claims,
        ThreadPoolExecutor(max_workers=chunks_in_flight, thread_name_prefix="keys-and-hsm") as pool,
    ):
        try:
            for work, resumed, claim in chunks():
                inflight.append(_Chunk(work, pool.submit(keys_and_seal, work), resumed, claim))
                while len(inflight) > chunks_in_flight:
                    store(inflight.popleft())
            while inflight:
                store(inflight.popleft())
        finally:
            for chunk in inflight:  # an error stopped the run: drop what is still in flight
                chunk.result.cancel()
    report.seconds = time.perf_counter() - started
    return report


def seal_pack(
    records: Records,
    pack_serial: str,
    auth_keys: DeviceAuthKeyMaker,
    hsm: SealService,
    *,
    limit: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: ProgressCallback | None = None,
    issuer_public_key: ec.EllipticCurvePublicKey | None = None,
    keygen_threads: int = DEFAULT_KEYGEN_THREADS,
    chunks_in_flight: int = DEFAULT_CHUNKS_IN_FLIGHT,
) -> SealReport:
    """Seal requested orders (oldest first) with the cards of one pack; see `seal_orders`."""
    return seal_orders(
        records,
        auth_keys,
        hsm,
        pack_serial=pack_serial,
        limit=limit,
        chunk_size=chunk_size,
        progress=progress,
        issuer_public_key=issuer_public_key,
        keygen_threads=keygen_threads,
        chunks_in_flight=chunks_in_flight,
    )
