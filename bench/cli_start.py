"""How long `sealcard` takes to start: --help, --version, a group's --help, a simple command.

Issue 12 asks for `sealcard --help` and a simple command in under 150 ms. Each command line is
run --runs times as a fresh process (round robin, so a busy moment of a shared machine hits
all alike) and its wall time is reported as median and p90, next to two floors measured in the
same run: `python3 -c pass` (the interpreter and site.py) and `python3 -c "import click"`
(the least any click program pays). The ratios to those floors are what to compare between
machines. The CPU time (user + system) of each run is reported beside the wall time: on a
shared machine it moves much less than the wall time does.

The installed `sealcard` is the console script pip wrote next to this interpreter (it imports
sealcard.cli.main and calls main: no entry-point lookup through importlib.metadata). Every
other `sealcard` on PATH (a pyenv shim is a bash script that runs `pyenv exec`) and
`python3 -m sealcard` are timed on `--help` too, so the cost of a wrapper shows on its own line.

`sealcard readers --json` talks to pcscd: without one it ends with exit 3 after the same
imports (reported as such, not skipped).

--tree NAME=HOST_DIR (repeatable) runs every sealcard line once per source tree (PYTHONPATH),
interleaved in the same run: `--tree before=/tmp/old/host --tree after=host` compares two
versions on one machine at one time. Without it, the environment's PYTHONPATH is used.

Example:
  python3 bench/cli_start.py --runs 30
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

MS = 1000.0
COMMANDS: tuple[tuple[str, ...], ...] = (
    ("--help",),
    ("--version",),
    ("card", "--help"),
    ("issuer", "--help"),
    ("issuer", "order", "--help"),
    ("readers", "--json"),
)


@dataclass
class Line:
    """One command line to time, in one environment."""

    label: str
    argv: list[str]
    env: dict[str, str]
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    exit_codes: set[int] = field(default_factory=set)

    def run(self) -> None:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(
            self.argv,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        self.times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu.append(
            after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        )  # user + system CPU of the process and all it waited for: steadier under load
        self.exit_codes.add(done.returncode)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times) * MS

    @property
    def cpu_ms(self) -> float:
        return statistics.median(self.cpu) * MS

    @property
    def p90_ms(self) -> float:
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))] * MS


def wrappers(script: Path) -> list[str]:
    """Every other `sealcard` on PATH (as a shell would find them, in PATH order)."""
    found: list[str] = []
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(folder) / "sealcard"
        if (
            os.access(candidate, os.X_OK)
            and candidate.resolve() != script.resolve()
            and str(candidate) not in found
        ):
            found.append(str(candidate))
    return found


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of each line (default 20)")
    parser.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="NAME=HOST_DIR",
        help="a source tree to run sealcard from (repeatable; default: the environment's)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    python = sys.executable
    script = Path(python).parent / "sealcard"
    if not script.exists():
        sys.exit(f"no {script}: the sealcard executable is not installed (tools/setup.sh)")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("SEALCARD_")}
    trees = [tree.split("=", 1) for tree in args.tree] or [["", base_env.get("PYTHONPATH", "")]]

    lines = [
        Line("python3 -c pass", [python, "-c", "pass"], base_env),
        Line("python3 -c 'import click'", [python, "-c", "import click"], base_env),
    ]
    for name, host in trees:
        env = {**base_env, "PYTHONPATH": str(Path(host).resolve()) if host else ""}
        tag = f"[{name}] " if name else ""
        for command in COMMANDS:
            lines.append(Line(f"{tag}sealcard {' '.join(command)}", [str(script), *command], env))
        for wrapper in wrappers(script):
            lines.append(Line(f"{tag}{wrapper} --help", [wrapper, "--help"], env))
        if (Path(host or ".") / "sealcard" / "__main__.py").exists() or not host:
            lines.append(
                Line(f"{tag}python3 -m sealcard --help", [python, "-m", "sealcard", "--help"], env)
            )

    for _ in range(args.runs):
        for line in lines:
            line.run()

    floor, click_floor = lines[0].median_ms, lines[1].median_ms
    rows = [
        {
            "line": line.label,
            "median_ms": round(line.median_ms, 1),
            "p90_ms": round(line.p90_ms, 1),
            "cpu_ms": round(line.cpu_ms, 1),
            "cpu_x_click": round(line.cpu_ms / lines[1].cpu_ms, 2),
            "x_python": round(line.median_ms / floor, 2),
            "x_click": round(line.median_ms / click_floor, 2),
            "over_click_ms": round(line.median_ms - click_floor, 1),
            "exit_codes": sorted(line.exit_codes),
        }
        for line in lines
    ]
    load = os.getloadavg()
    if args.json:
        print(
            json.dumps(
                {
                    "runs": args.runs,
                    "sealcard": str(script),
                    "load_average": [round(x, 2) for x in load],
                    "cores": os.cpu_count(),
                    "lines": rows,
                },
                indent=2,
            )
        )
        return
    print(
        f"{args.runs} runs each, round robin; {os.cpu_count()} cores, load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; sealcard is {script}"
    )
    width = max(len(row["line"]) for row in rows)
    print(
        f"{'':<{width}}  {'median':>8} {'p90':>8}  {'x python':>8} {'x click':>8} "
        f"{'+click ms':>9}  {'CPU':>8} {'x click':>8}  exit"
    )
    for row in rows:
        print(
            f"{row['line']:<{width}}  {row['median_ms']:>6.1f}ms {row['p90_ms']:>6.1f}ms  "
            f"{row['x_python']:>8.2f} {row['x_click']:>8.2f} {row['over_click_ms']:>9.1f}  "
            f"{row['cpu_ms']:>6.1f}ms {row['cpu_x_click']:>8.2f}  "
            f"{','.join(map(str, row['exit_codes']))}"
        )


if __name__ == "__main__":
    main()
