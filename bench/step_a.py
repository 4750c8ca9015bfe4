"""Measure step A on simulated (or real) cards: the numbers issue 2 asks for.

Prints, per card reader:
- step A time, median of --runs initializations, split into on-card key
  generation (both key pairs) and the rest (serial, issuer key, two
  certificates, signed device key, close);
- the round trip of a small APDU through PC/SC (GET DATA DO_SERIAL: a
  5-byte command, an 8-byte answer), median of --rtt;
- APDUs and bytes per initialization, chained and extended.

Each run needs a blank card: by default the simulator resets the card
(sealcard.sim.reset_card); --reset-command runs a command of yours instead,
with {index} (position among the readers with a card) and {reader} filled in.

Example (after `sealcard sim up --cards 2`):
  python bench/step_a.py --cards 2 --runs 20 --rtt 200 --both-modes
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from sealcard import sim
from sealcard.card.session import SealcardSession
from sealcard.parties.provider import ProviderCA, initialize_card
from sealcard.transport.pcsc import PcscConnection, readers_with_card


def reset(template: str | None, index: int, reader: str) -> None:
    """Make the card blank: the simulator's reset, or a command of the user's."""
    if template is None:
        sim.reset_card(sim.card_index(reader))
        return
    command = template.format(index=index, reader=reader)
    subprocess.run(shlex.split(command), check=True, capture_output=True)


def bench_reader(
    index: int, reader: str, ca: ProviderCA, args: argparse.Namespace
) -> dict[str, Any]:
    issuer = ec.generate_private_key(ec.SECP256R1()).public_key()
    keygen: list[float] = []
    rest: list[float] = []
    traffic: dict[str, dict[str, int]] = {}
    for run in range(args.runs):
        extended = bool(run % 2) if args.both_modes else args.extended
        reset(args.reset_command, index, reader)
        with PcscConnection.open(reader, exclusive=True) as connection:
            session = SealcardSession(connection, extended=extended)
            result = initialize_card(session, ca, issuer, (run + 1).to_bytes(8, "big"))
        keygen.append(result.keygen_seconds)
        rest.append(result.total_seconds - result.keygen_seconds)
        traffic["extended" if extended else "chained"] = {
            "apdus": result.traffic.apdus,
            "bytes_sent": result.traffic.bytes_sent,
            "bytes_received": result.traffic.bytes_received,
        }
    with PcscConnection.open(reader) as connection:
        session = SealcardSession(connection)
        rtts = []
        for _ in range(args.rtt):
            start = time.perf_counter()
            session.read_serial()
            rtts.append(time.perf_counter() - start)
    return {
        "reader": reader,
        "runs": args.runs,
        "step_a_median_s": statistics.median(k + r for k, r in zip(keygen, rest, strict=True)),
        "keygen_median_s": statistics.median(keygen),
        "rest_median_s": statistics.median(rest),
        "small_apdu_rtt_median_ms": statistics.median(rtts) * 1000,
        "rtt_samples": args.rtt,
        "traffic_per_init": traffic,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=1, help="how many readers to measure")
    parser.add_argument("--runs", type=int, default=20, help="initializations per card")
    parser.add_argument("--rtt", type=int, default=200, help="small APDUs for the round trip")
    parser.add_argument(
        "--reset-command",
        help="makes card {index}/{reader} blank (default: the simulator's reset-blank)",
    )
    parser.add_argument("--extended", action="store_true", help="extended-length APDUs")
    parser.add_argument(
        "--both-modes", action="store_true", help="alternate chained and extended runs"
    )
    args = parser.parse_args()
    readers = sorted(readers_with_card())[: args.cards]
    if not readers:
        raise SystemExit("no reader holds a card (sealcard sim up?)")
    with tempfile.TemporaryDirectory() as tmp:
        ca = ProviderCA.create(Path(tmp) / "ca", b"bench passphrase only")
        results = [bench_reader(i, r, ca, args) for i, r in enumerate(readers)]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
