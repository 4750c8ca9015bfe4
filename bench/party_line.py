"""Benchmark: the provider's and the bureau's lines, cards per minute on 1..N readers.

    tools/isolated.sh bash -c 'sealcard sim up --cards 14 && python3 bench/party_line.py'
    python3 bench/party_line.py [--readers 1,2,4,8,14] [--json]

For each reader count n, on the first n simulated readers (blanked first), as the operators
run it (the installed `sealcard`, each party in its own home):
- provider: `provider init-pack` (step A on every card at once, then the pack file);
- issuer: `pack import`, n orders (FIG. 5), `seal --pack`, `export` (one batch);
- bureau: `bureau personalize` of that batch on the same n readers.
A first round on all readers (not reported) warms up the simulator's JIT. The time of a
line is the span of its parallel work: the longest card of the run (the
commands report each card's seconds), so the CLI's start-up (about 0.5 s) is left out;
cards per minute = n / span * 60, scaling efficiency = (rate with n / n) / (rate with 1).

The simulator runs every card in one JVM on this machine's cores and has no timing model
(jCardSim answers as fast as the host computes, RSA-2048 key generation included), so this
measures how the host code scales with readers, not a real chip's speed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readers", default="1,2,4,8,14")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    counts = [int(n) for n in args.readers.split(",")]

    from party_world import NAMES, PartyWorld

    from sealcard import sim

    status = sim.status(sim.default_run_dir())
    if not status.running or len(status.readers) < max(counts):
        raise SystemExit(f"needs `sealcard sim up --cards {max(counts)}` first")
    readers = status.readers
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="sealcard-line-bench-") as tmp:
        world = PartyWorld.create(Path(tmp))
        try:
            user = world.run("issuer", "user", "add", "--name", "Line Bench", "--address", "1 Way")
            user_id = str(user.ok().payload["user"]["id"])
            # A first round on every reader warms the card JVM's JIT up; it is not reported.
            for round_number, n in enumerate([max(counts), *counts]):
                for index in range(n):
                    sim.reset_card(index)
                chosen = [arg for r in readers[:n] for arg in ("--reader", r)]
                pack = f"LINE-{round_number}-{n}"
                made = world.run("provider", "init-pack", "--pack", pack, *chosen).ok().payload
                provider_span = max(r["seconds"] for r in made["readers"])
                world.run("issuer", "pack", "import", "--file", made["file"]).ok()
                world.run(
                    "issuer", "order", "--user", user_id, "--count", str(n),
                    "--mailer", NAMES["mailer"],
                ).ok()  # fmt: skip
                world.run("issuer", "seal", "--pack", pack).ok()
                batch = world.run("issuer", "export", "--bureau", NAMES["bureau"]).ok().payload
                file = batch["batches"][0]["personalization"]
                done = world.run("bureau", "personalize", "--file", file, *chosen).ok().payload
                bureau_span = max(r["seconds"] for r in done["readers"])
                assert done["totals"] == {"personalized": n}, done["totals"]
                if round_number == 0:
                    continue
                rows.append(
                    {
                        "readers": n,
                        "provider_span_s": round(provider_span, 2),
                        "provider_cards_per_minute": round(n / provider_span * 60, 1),
                        "bureau_span_s": round(bureau_span, 2),
                        "bureau_cards_per_minute": round(n / bureau_span * 60, 1),
                    }
                )
        finally:
            world.stop()
    base = rows[0]
    for row in rows:
        for line in ("provider", "bureau"):
            rate = row[f"{line}_cards_per_minute"] / row["readers"]
            one = base[f"{line}_cards_per_minute"] / base["readers"]
            row[f"{line}_efficiency"] = round(rate / one, 2)
    result = {"lines": rows, "cores": os.cpu_count(), "load_average_1min": os.getloadavg()[0]}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print("readers  provider cards/min (efficiency)   bureau cards/min (efficiency)")
    for r in rows:
        print(
            f"{r['readers']:>7}  {r['provider_cards_per_minute']:>18} ({r['provider_efficiency']})"
            f"   {r['bureau_cards_per_minute']:>16} ({r['bureau_efficiency']})"
        )
    print(f"{os.cpu_count()} cores, load average (1 min) {result['load_average_1min']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
