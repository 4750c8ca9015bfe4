#!/usr/bin/env python3
"""Look for secrets where they must not be: every file under some roots, captured process
argument lists and captured temp files (suite 7 of docs/assurance.md).

Generic: it takes the secrets (and, for each, the files allowed to hold it: its sealed
container) and the roots to scan, so it works on any layout of the parties' folders.

    python3 tools/secret_scan.py --secrets secrets.json --root DIR [--root DIR ...] [--json]

secrets.json is a list of {"name": ..., "hex": ... | "text": ..., "allowed": [paths]}. Each
secret is searched as its raw bytes, as hex (either case), as base64 and base64url (at each of
the three byte alignments, so a secret inside a longer encoded blob is found too, also across
the line breaks of PEM), and, for text, as UTF-16LE. A numeric secret shorter than 10 digits
(a PIN) only counts where no digit stands right before or after it, so timestamps and counters
do not raise false alarms. Exit status: 0 nothing found, 1 found (one line each), 2 usage.

`ProcessWatch` (used by the test that runs the main job) samples /proc/*/cmdline and the
files of a temp folder while something runs, so short-lived argument lists and temp files
are scanned too.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

_MIN_BASE64_SECRET = 6
_SHORT_NUMBER = 10
_MAX_FILE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Secret:
    """A value that must stay in its container, and the paths allowed to hold it."""

    name: str
    value: bytes
    allowed: tuple[Path, ...] = ()

    @property
    def is_short_number(self) -> bool:
        return self.value.isdigit() and len(self.value) < _SHORT_NUMBER


@dataclass(frozen=True)
class Finding:
    """Where one secret was found, and in which encoding."""

    secret: str
    encoding: str
    where: str

    def line(self) -> str:
        return f"{self.secret} ({self.encoding}) in {self.where}"


def _base64_forms(value: bytes) -> list[tuple[str, bytes]]:
    """The parts of base64(value) that do not depend on the bytes around it, at each of the
    three alignments a secret can have inside a longer encoded blob."""
    forms: list[tuple[str, bytes]] = []
    for shift in range(3):
        encoded = base64.b64encode(b"\x00" * shift + value)
        # characters touched by the padding bytes before, or the unknown bytes after
        start = (shift * 4 + 2) // 3
        end = (len(encoded) - encoded.count(b"=")) - (0 if (shift + len(value)) % 3 == 0 else 1)
        core = encoded[start:end].rstrip(b"=")
        if len(core) >= 8:
            forms.append((f"base64@{shift}", core))
            url = core.replace(b"+", b"-").replace(b"/", b"_")
            if url != core:
                forms.append((f"base64url@{shift}", url))
    return forms


def patterns(secret: Secret) -> list[tuple[str, re.Pattern[bytes]]]:
    """Every encoding of the secret as a regular expression over bytes."""
    value = secret.value
    out: list[tuple[str, re.Pattern[bytes]]] = []
    if secret.is_short_number:
        out.append(("ascii", re.compile(rb"(?<![0-9])" + re.escape(value) + rb"(?![0-9])")))
        return out
    out.append(("raw", re.compile(re.escape(value))))
    out.append(("hex", re.compile(re.escape(value.hex().encode()), re.IGNORECASE)))
    if len(value) >= _MIN_BASE64_SECRET:
        for name, form in _base64_forms(value):
            out.append((name, re.compile(re.escape(form))))
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    if text and text.isprintable():
        out.append(("utf-16le", re.compile(re.escape(text.encode("utf-16-le")))))
    return out


class Scanner:
    """Searches blobs of bytes for a set of secrets."""

    def __init__(self, secrets: Iterable[Secret]) -> None:
        self.secrets = list(secrets)
        self._compiled = [(s, patterns(s)) for s in self.secrets]

    def scan_bytes(self, data: bytes, where: str, path: Path | None = None) -> list[Finding]:
        # PEM and other wrapped encodings break lines every 64 or 76 characters
        flat = data.replace(b"\r", b"").replace(b"\n", b"") if b"\n" in data else data
        found: list[Finding] = []
        for secret, compiled in self._compiled:
            if path is not None and _is_allowed(path, secret.allowed):
                continue
            for encoding, pattern in compiled:
                if pattern.search(data) or (flat is not data and pattern.search(flat)):
                    found.append(Finding(secret.name, encoding, where))
                    break
        return found

    def scan_roots(self, roots: Iterable[Path], exclude: Iterable[Path] = ()) -> list[Finding]:
        excluded = [p.resolve() for p in exclude]
        found: list[Finding] = []
        for path in _files(roots):
            if any(path == e or e in path.parents for e in excluded):
                continue
            try:
                if path.stat().st_size > _MAX_FILE_BYTES:
                    continue
                data = path.read_bytes()
            except OSError:
                continue  # gone, a socket, unreadable: nothing to scan
            found.extend(self.scan_bytes(data, str(path), path))
        return found


def _is_allowed(path: Path, allowed: tuple[Path, ...]) -> bool:
    return any(path == a or a in path.parents for a in allowed)


def _files(roots: Iterable[Path]) -> Iterator[Path]:
    for root in roots:
        root = root.resolve()
        if root.is_file():
            yield root
            continue
        for folder, _dirs, names in os.walk(root, followlinks=False):
            for name in names:
                path = Path(folder) / name
                if path.is_file() and not path.is_symlink():
                    yield path


@dataclass
class ProcessWatch:
    """Samples every process's argument list, and the files of `temp_dir`, until stopped."""

    temp_dir: Path | None = None
    interval_s: float = 0.02
    cmdlines: set[bytes] = field(default_factory=set)
    temp_files: dict[str, bytes] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _sample(self) -> None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                self.cmdlines.add((entry / "cmdline").read_bytes())
            except OSError:
                continue
        if self.temp_dir is not None:
            for path in _files([self.temp_dir]):
                try:
                    data = path.read_bytes()
                except OSError:
                    continue
                self.temp_files[f"{path}@{len(data)}:{hash(data)}"] = data

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.interval_s)

    def __enter__(self) -> ProcessWatch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()

    def scan(self, scanner: Scanner) -> list[Finding]:
        found: list[Finding] = []
        for cmdline in self.cmdlines:
            shown = cmdline.replace(b"\x00", b" ").decode("utf-8", "replace")[:120]
            found.extend(scanner.scan_bytes(cmdline, f"process arguments: {shown}"))
        for name, data in self.temp_files.items():
            found.extend(scanner.scan_bytes(data, f"temp file {name.split('@')[0]}"))
        return found


def load_secrets(path: Path) -> list[Secret]:
    """Secrets from JSON: [{"name", "hex" or "text", "allowed": [paths]}]."""
    entries = json.loads(path.read_text())
    out: list[Secret] = []
    for entry in entries:
        value = bytes.fromhex(entry["hex"]) if "hex" in entry else entry["text"].encode()
        out.append(
            Secret(entry["name"], value, tuple(Path(p).resolve() for p in entry.get("allowed", [])))
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="secret_scan.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--secrets", type=Path, required=True, help="JSON list of secrets")
    parser.add_argument("--root", type=Path, action="append", required=True, help="scan this")
    parser.add_argument("--exclude", type=Path, action="append", default=[], help="skip this")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        scanner = Scanner(load_secrets(args.secrets))
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: cannot read the secrets file {args.secrets}: {exc}", file=sys.stderr)
        return 2
    found = scanner.scan_roots(args.root, [*args.exclude, args.secrets])  # it holds them all
    if args.json:
        print(json.dumps({"ok": not found, "found": [f.__dict__ for f in found]}))
    else:
        for finding in found:
            print(f"found: {finding.line()}")
        if not found:
            print(f"no secret found ({len(scanner.secrets)} secrets, {len(args.root)} roots)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
