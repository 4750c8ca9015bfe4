"""Provider and bureau throughput across 1-16 readers, as a real line would see it.

Start the simulator with the card timing model first, so each command takes as long as it
would on an NXP JCOP 4 J3R180 (docs/performance.md, "The card timing model"):

    sealcard sim up --cards 16 --timing jcop4
    python bench/line_throughput.py --readers 1,2,4,8,16 --cards-per-reader 3

For each reader count N (the first N simulated readers), one thread per reader:
- provider line: blank the card (simulator control, costs nothing on the card), then step A
  (`initialize_card`: both key pairs, serial, issuer key, two certificates, signed device
  key, close), `--cards-per-reader` times;
- bureau line: `--cards-per-reader` rounds; in each, every card is blanked and initialized
  (not timed), a blob is sealed for it (not timed), then all N readers personalize at once
  (`personalize_card`: status, serial match, PERSONALIZE, read back) and that is timed.

Prints JSON: per line and N, cards, seconds, cards per minute, and scaling efficiency against
one reader (cards/min at N divided by N times cards/min at 1). Card insertion, printing and
transport are not modelled: these are the readers' and cards' share of a line only.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import coincurve
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sealcard import sim
from sealcard.card.session import SealcardSession
from sealcard.crypto.sealed_blob import SealedPayload, seal
from sealcard.parties.bureau import personalize_card
from sealcard.parties.provider import InitResult, ProviderCA, initialize_card
from sealcard.transport.pcsc import PcscConnection

PIN = b"123456"
PUK = b"12345678"
SECONDS_PER_MINUTE = 60.0


def run_parallel(readers: list[str], work: Callable[[str], None]) -> float:
    """Run `work(reader)` in one thread per reader; return the wall time; re-raise a failure."""
    errors: list[BaseException] = []

    def guarded(reader: str) -> None:
        try:
            work(reader)
        except BaseException as exc:  # carried to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(r,)) for r in readers]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - start


def step_a(reader: str, ca: ProviderCA, issuer: ec.EllipticCurvePrivateKey) -> InitResult:
    sim.reset_card(sim.card_index(reader))
    with PcscConnection.open(reader, exclusive=True) as connection:
        return initialize_card(SealcardSession(connection), ca, issuer.public_key())


def provider_line(
    readers: list[str], per_reader: int, ca: ProviderCA, issuer: ec.EllipticCurvePrivateKey
) -> float:
    def work(reader: str) -> None:
        for _ in range(per_reader):
            step_a(reader, ca, issuer)

    return run_parallel(readers, work)


def blob_for(init: InitResult, issuer: ec.EllipticCurvePrivateKey) -> bytes:
    auth = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = auth.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    payload = SealedPayload(coincurve.PrivateKey().secret, point, PIN, PUK)
    return seal(
        payload,
        init.serial,
        init.device_public_key,
        lambda message: issuer.sign(message, ec.ECDSA(hashes.SHA256())),
    )


def bureau_round(readers: list[str], ca: ProviderCA, issuer: ec.EllipticCurvePrivateKey) -> float:
    """Initialize every card and seal its blob (not timed), then personalize all (timed)."""
    blobs: dict[str, bytes] = {}
    lock = threading.Lock()

    def prepare(reader: str) -> None:
        blob = blob_for(step_a(reader, ca, issuer), issuer)
        with lock:
            blobs[reader] = blob

    def personalize(reader: str) -> None:
        with PcscConnection.open(reader, exclusive=True) as connection:
            personalize_card(SealcardSession(connection), blobs[reader])

    run_parallel(readers, prepare)
    return run_parallel(readers, personalize)


def bureau_line(
    readers: list[str], rounds: int, ca: ProviderCA, issuer: ec.EllipticCurvePrivateKey
) -> float:
    return sum(bureau_round(readers, ca, issuer) for _ in range(rounds))


def summarize(per_reader: int, results: dict[int, float]) -> list[dict[str, Any]]:
    base = per_reader / results[min(results)] * SECONDS_PER_MINUTE  # per reader, fewest readers
    rows = []
    for count, seconds in sorted(results.items()):
        cards = count * per_reader
        per_minute = cards / seconds * SECONDS_PER_MINUTE
        rows.append(
            {
                "readers": count,
                "cards": cards,
                "seconds": round(seconds, 2),
                "cards_per_minute": round(per_minute, 1),
                "scaling_efficiency": round(per_minute / (count * base), 3),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", default="1,2,4,8,16", help="reader counts to measure")
    parser.add_argument("--cards-per-reader", type=int, default=3)
    parser.add_argument("--lines", default="provider,bureau", help="provider, bureau or both")
    args = parser.parse_args()

    status = sim.status()
    if not status.running:
        raise SystemExit("no simulator runs: sealcard sim up --cards 16 --timing jcop4")
    counts = [int(n) for n in args.readers.split(",")]
    if max(counts) > len(status.readers):
        raise SystemExit(f"the simulator has {len(status.readers)} cards, asked for {max(counts)}")
    timings = sorted({card.timing or "?" for card in status.cards})
    issuer = ec.generate_private_key(ec.SECP256R1())
    out: dict[str, Any] = {"timing": timings, "cards_per_reader": args.cards_per_reader}
    with tempfile.TemporaryDirectory() as tmp:
        ca = ProviderCA.create(Path(tmp) / "ca", b"bench passphrase")
        for line in args.lines.split(","):
            measure = provider_line if line == "provider" else bureau_line
            results = {
                n: measure(status.readers[:n], args.cards_per_reader, ca, issuer) for n in counts
            }
            out[line] = summarize(args.cards_per_reader, results)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
