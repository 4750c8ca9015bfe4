"""Benchmark: sealed party files at scale, and the issuer's export against its sealing.

    python bench/party_files.py [--sizes 1000,100000] [--json]

Two parts, in one run (a shared machine disturbs the wall clock: compare the numbers of one
run with each other, not with another run's):

1. The file format alone (formats/sealed_file.py + formats/party_csv.py through
   parties/exchange.py), for `device-init` rows (~2.4 KB each, the provider's pack file) and
   `personalization` rows (~0.9 KB each, the issuer's batch file), at each size: writing and
   reading (every row parsed, tag and signature checked), each in its own child process so
   that its peak RSS (the kernel's VmHWM) is its own. Keys are software keys (the token
   is used once per file: one signature, one ECDH per receiver).
2. The issuer's hand-over, at each size, in a fresh issuer home (SQLite, SoftHSM2, the issuer
   HSM service): a fabricated pack, one order per card with a PIN letter (FIG. 5), sealed with
   the code of `issuer seal` (cards/s: the rate to match); then `sealcard issuer export` as a
   child process (cards/s, peak RSS) writing personalization and PIN-letter files in batches
   of 1,000; then `sealcard issuer receive` of the bureau's results file for every card.

Peak RSS is reported as measured and as growth over the same child doing nothing (the
interpreter and the imports): flat memory means the growth does not follow the card count.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))

DEVICE_INIT_ROW_BYTES = (294, 91, 560, 480, 72)  # SPKIs, two certificates, signed key (DER)
BLOB_BYTES = 650
MAILER = "post"
BUREAU = "print-house"


# -- part 1: the format alone, one child process per measurement ------------------------------


def _party(folder: Path, role: Any, name: str) -> Any:
    """A software party key and its certificate, kept in the folder for the other children."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from soft_party import SoftPartyKey

    party = SoftPartyKey(role, name)
    key_path, cert_path = folder / f"{name}.key", folder / f"{name}.pem"
    if key_path.exists():
        party.key = load_pem_private_key(key_path.read_bytes(), None)  # type: ignore[assignment]
        party.certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    else:
        key_path.write_bytes(party.key_pem())
        cert_path.write_bytes(party.cert_pem())
    return party


def _rows(kind: str, count: int) -> Iterator[list[str]]:
    pieces = [base64.b64encode(os.urandom(n)).decode() for n in DEVICE_INIT_ROW_BYTES]
    blob = base64.b64encode(os.urandom(BLOB_BYTES)).decode()
    for i in range(count):
        serial = f"{i:016X}"
        if kind == "device-init":
            yield [serial, *pieces]
        else:
            yield [str(i + 1), serial, blob, "hsm", MAILER, f"Card Holder {i}",
                   f"{i} Long Street\nApartment {i % 97}\n12345 Some Town"]  # fmt: skip


def child(action: str, kind: str, count: int, path: Path) -> dict[str, Any]:
    """One measurement in this (child) process."""
    from sealcard.formats.party_csv import FileKind, PartyName, Role
    from sealcard.parties.exchange import Identity, read_party_file, write_party_file

    file_kind = FileKind(kind)
    if file_kind is FileKind.DEVICE_INIT:  # the pack file: provider to issuer
        sender = _party(path.parent, Role.PROVIDER, "acme")
        receiver = _party(path.parent, Role.ISSUER, "bank")
    else:  # a batch file: issuer to bureau
        sender = _party(path.parent, Role.ISSUER, "bank")
        receiver = _party(path.parent, Role.BUREAU, BUREAU)
    start = time.perf_counter()
    if action == "write":
        me = Identity(PartyName(sender.role, sender.name), sender)
        to = _peer(receiver)
        write_party_file(path, me, [to], file_kind, "BENCH", count, _rows(kind, count))
        rows = count
    elif action == "read":
        me = Identity(PartyName(receiver.role, receiver.name), receiver)
        peers = _Peers([_peer(sender)])

        def consume(_header: Any, rows_in: Iterator[list[str]]) -> int:
            return sum(1 for _ in rows_in)

        _, rows = read_party_file(path, me, peers, [file_kind], consume, seen=lambda _: False)
    else:
        rows = 0  # baseline: the imports only
    seconds = time.perf_counter() - start
    return {"rows": rows, "seconds": seconds, "vm_hwm_kib": _vm_hwm_kib()}


def _peer(party: Any) -> Any:
    from sealcard.formats.party_cert import PartyBundle
    from sealcard.parties.exchange import Peer

    return Peer(PartyBundle(party.certificate, party.role, party.name))


class _Peers:
    def __init__(self, peers: list[Any]) -> None:
        self.peers = peers

    def find(self, party: Any) -> Any:
        return next((p for p in self.peers if p.party == party), None)

    def find_certificate(self, certificate: Any) -> Any:
        return next((p for p in self.peers if p.certificate == certificate), None)


def _vm_hwm_kib() -> int:
    """This process's peak resident memory since its exec (the kernel's VmHWM). Not
    ru_maxrss: Linux carries the parent's peak over into a forked child's ru_maxrss."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise SystemExit("no VmHWM in /proc/self/status")


# A `sealcard` command that prints its VmHWM last, on stderr, when it exits.
CLI_WITH_PEAK = (
    "import atexit, runpy, sys\n"
    "def peak():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            sys.stderr.write('\\nVmHWM ' + line.split()[1] + '\\n')\n"
    "atexit.register(peak)\n"
    "runpy.run_module('sealcard.cli.main', run_name='__main__')\n"
)


def run_child(argv: list[str], env: dict[str, str] | None = None) -> tuple[dict[str, Any], int]:
    """Run a child; its JSON output (if any) and its peak RSS in KiB (VmHWM, as it reports)."""
    env = env or {**os.environ, "PYTHONPATH": str(ROOT / "host")}  # this tree's sealcard
    done = subprocess.run(argv, capture_output=True, env=env, check=False)
    err = done.stderr.decode()
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:6])}... failed: {err[-2000:]}")
    text = done.stdout.decode().strip()
    payload: dict[str, Any] = json.loads(text.splitlines()[-1]) if text else {}
    peaks = [int(line.split()[1]) for line in err.splitlines() if line.startswith("VmHWM ")]
    peak = peaks[-1] if peaks else int(payload.pop("vm_hwm_kib", 0))
    return payload, peak


def format_part(sizes: list[int], folder: Path) -> list[dict[str, Any]]:
    me = [sys.executable, str(Path(__file__).resolve()), "--child"]
    _, baseline = run_child([*me, "none", "personalization", "0", str(folder / "none")])
    results = []
    for kind in ("device-init", "personalization"):
        for size in sizes:
            path = folder / f"{kind}-{size}.p7m"
            row: dict[str, Any] = {"kind": kind, "cards": size}
            for action in ("write", "read"):
                measured, peak = run_child([*me, action, kind, str(size), str(path)])
                row[action] = {
                    "seconds": round(measured["seconds"], 3),
                    "cards_per_second": round(size / measured["seconds"]),
                    "peak_rss_mib": round(peak / 1024, 1),
                    "growth_mib": round((peak - baseline) / 1024, 1),
                }
            row["file_mib"] = round(path.stat().st_size / 2**20, 2)
            path.unlink()
            results.append(row)
    return results


# -- part 2: the issuer's export against its sealing --------------------------------------------


def _seal_batch() -> ModuleType:
    spec = importlib.util.spec_from_file_location("seal_batch", ROOT / "bench" / "seal_batch.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["seal_batch"] = module
    spec.loader.exec_module(module)
    return module


def _mailer_bundle() -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from soft_party import SoftPartyKey

    from sealcard.formats.party_cert import PartyBundle, make_letter_certificate
    from sealcard.formats.party_csv import Role

    mailer = SoftPartyKey(Role.MAILER, MAILER)
    letter_key = rsa.generate_private_key(65537, 3072)
    letter = make_letter_certificate(letter_key.public_key(), mailer.certificate, mailer.sign)
    return PartyBundle(mailer.certificate, Role.MAILER, MAILER, letter), letter_key


def export_part(size: int, folder: Path) -> dict[str, Any]:
    """Seal `size` cards, then export them and take the bureau's results back."""
    from soft_party import SoftPartyKey

    from sealcard.formats.party_csv import FileKind, PartyName, Role
    from sealcard.hsm.config import load_settings
    from sealcard.hsm.issuer_client import IssuerHsmClient
    from sealcard.hsm.system_hsm import DeviceAuthKeys, RequestSigner
    from sealcard.hsm.token import Token
    from sealcard.issuer import exchange_records as xr
    from sealcard.issuer.batch import seal_orders
    from sealcard.issuer.fake import import_fake_pack
    from sealcard.parties.exchange import Identity, Peer, write_party_file
    from sealcard.parties.issuer_exchange import issuer_keys_init

    bench = _seal_batch()
    root = folder / f"issuer-{size}"
    records = bench.setup_home(root, None)
    settings = load_settings(root)
    import_fake_pack(records, size, "BENCH-PACK", rsa_pool=50)
    users = [records.add_user(f"User {i}", f"{i} Bench Street\nTestville") for i in range(100)]
    records.record_mailers([MAILER])  # orders name only known mailers (schema 5)
    per_user = -(-size // len(users))
    left = size
    for user in users:
        if left > 0:
            records.request_orders(user.id, min(per_user, left), mailer_id=MAILER)
            left -= per_user
    bundle = issuer_keys_init(root, "bank")
    bureau = SoftPartyKey(Role.BUREAU, BUREAU)
    mailer, _ = _mailer_bundle()
    bureau_bundle = _peer(bureau).bundle
    xr.add_party(records, "bureau", BUREAU, bureau_bundle.fingerprint, bureau_bundle.pem())
    xr.add_party(records, "mailer", MAILER, mailer.fingerprint, mailer.pem())

    service = bench.start_service(root, settings.socket_path)
    token = Token.open(settings.system, pool_size=3)
    try:
        client = IssuerHsmClient.for_settings(settings, RequestSigner(token))
        client.register_mailer(MAILER, mailer.extra.public_key())
        report = seal_orders(records, DeviceAuthKeys(token), client)
    finally:
        token.close()
        service.terminate()
        service.wait(timeout=30)
    sealing = report.per_second

    env = {**os.environ, "PYTHONPATH": str(ROOT / "host")}
    cli = [sys.executable, "-c", CLI_WITH_PEAK, "issuer"]
    home = ["--home", str(root)]
    start = time.perf_counter()
    exported, export_peak = run_child(
        [*cli, "export", "--bureau", BUREAU, "--out-dir", str(folder / f"out-{size}"), *home,
         "--json"], env,
    )  # fmt: skip
    export_seconds = time.perf_counter() - start
    assert exported["orders"] == size, exported

    # The bureau's results for every card (what `bureau personalize` writes), then receive.
    rows = []
    for batch in xr.batches(records):
        for r in xr.batch_rows(records, batch.batch_id):
            key = records.sealed_output(r.order_id).user_public_key.hex()
            rows.append([r.serial.hex().upper(), "personalized", "", key, "2026-12-01T00:00:00Z"])
    results = folder / f"results-{size}.p7m"
    write_party_file(
        results,
        Identity(PartyName(Role.BUREAU, BUREAU), bureau),
        [Peer(bundle)],
        FileKind.RESULTS,
        "BENCH",
        len(rows),
        rows,
    )
    del rows
    records.close()
    start = time.perf_counter()
    receive = [*cli, "receive", "--file", str(results), *home, "--json"]
    received, receive_peak = run_child(receive, env)
    receive_seconds = time.perf_counter() - start
    assert received["applied"][0]["counts"] == {"personalized": size}, received
    return {
        "cards": size,
        "sealing_cards_per_second": round(sealing, 1),
        "export_seconds": round(export_seconds, 2),
        "export_cards_per_second": round(size / export_seconds, 1),
        "export_to_sealing": round(size / export_seconds / sealing, 2),
        "export_peak_rss_mib": round(export_peak / 1024, 1),
        "receive_seconds": round(receive_seconds, 2),
        "receive_cards_per_second": round(size / receive_seconds, 1),
        "receive_peak_rss_mib": round(receive_peak / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,100000", help="card counts, comma-separated")
    parser.add_argument("--skip-export", action="store_true", help="the file format part only")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs=4, metavar=("ACTION", "KIND", "N", "PATH"))
    parser.add_argument("--export-child", nargs=2, metavar=("N", "FOLDER"))
    args = parser.parse_args()
    if args.child:
        action, kind, count, path = args.child
        print(json.dumps(child(action, kind, int(count), Path(path))))
        return 0
    if args.export_child:  # a process opens one SoftHSM configuration: one home per process
        print(json.dumps(export_part(int(args.export_child[0]), Path(args.export_child[1]))))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="sealcard-files-bench-") as tmp:
        os.chmod(tmp, 0o711)  # the issuer HSM service drops to its own user: it must reach its home
        folder = Path(tmp)
        files = format_part(sizes, folder)
        me = [sys.executable, str(Path(__file__).resolve()), "--export-child"]
        exports = [] if args.skip_export else [run_child([*me, str(n), tmp])[0] for n in sizes]
        for export in exports:
            export.pop("vm_hwm_kib", None)
    result = {"files": files, "export": exports, "load_average_1min": os.getloadavg()[0]}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print("file format (software keys; peak RSS of the child, growth over an idle child)")
    for r in files:
        w, rd = r["write"], r["read"]
        print(
            f"  {r['kind']:16} {r['cards']:>7} cards {r['file_mib']:>7} MiB  write"
            f" {w['cards_per_second']:>7}/s {w['peak_rss_mib']:>6} MiB (+{w['growth_mib']})"
            f"  read {rd['cards_per_second']:>7}/s {rd['peak_rss_mib']:>6} MiB"
            f" (+{rd['growth_mib']})"
        )
    for e in exports:
        print(
            f"issuer, {e['cards']} cards: sealing {e['sealing_cards_per_second']}/s, export"
            f" {e['export_cards_per_second']}/s ({e['export_to_sealing']} of sealing, peak"
            f" {e['export_peak_rss_mib']} MiB), receive results {e['receive_cards_per_second']}/s"
            f" (peak {e['receive_peak_rss_mib']} MiB)"
        )
    print(f"load average (1 min) at the end: {result['load_average_1min']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
