"""Five parties in one temporary folder, driven through the installed `sealcard` executable
as their operators would: each with its own home and token, certificates exchanged once.

    world = PartyWorld.create(tmp)          # issuer (with its HSM service), provider, bureau,
    ...                                     # mailer "post", shipper; everyone knows everyone
    done = world.run("issuer", "status")    # Run(code, out, err, payload): --json added
    world.stop()

Also: library helpers that write sealed files the CLI never would (a wrong version, a
forged sender), for the refusal tests.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sealcard.formats.party_csv import CsvWriter, FileHeader
from sealcard.formats.sealed_file import KeyHolder, SealedFileWriter, sender_key
from sealcard.parties.exchange import Peer, atomic_output

PARTIES = ("provider", "bureau", "mailer", "shipper")
NAMES = {"issuer": "bank", "provider": "acme", "bureau": "print-house", "mailer": "post",
         "shipper": "parcel-co"}  # fmt: skip
PASSPHRASE = "world passphrase 0123"
TIMEOUT_S = 300


@dataclass
class Run:
    """One finished command: exit code, stdout, stderr, and the JSON it printed (if any)."""

    args: tuple[str, ...]
    code: int
    out: str
    err: str
    payload: dict[str, Any] = field(default_factory=dict)

    def ok(self) -> Run:
        command = " ".join(self.args)
        assert self.code == 0, f"sealcard {command} -> {self.code}\n{self.out}{self.err}"
        return self

    def refused(self, code: int = 1) -> Run:
        """Exit code 1 (or `code`) with `ok` false, or one `error:` line on stderr, and no
        traceback."""
        assert self.code == code, f"sealcard {' '.join(self.args)} -> {self.code}\n{self.out}"
        assert "Traceback" not in self.err + self.out
        if self.payload:
            assert self.payload["ok"] is False
        else:
            lines = self.err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), self.err
        return self

    def usage(self) -> Run:
        """Exit code 2 (docs/cli.md: a path, file or value to fix), one line, no traceback."""
        return self.refused(2)


@dataclass
class PartyWorld:
    root: Path
    env: dict[str, str]

    @classmethod
    def create(cls, root: Path) -> PartyWorld:
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            "SEALCARD_ISSUER_HOME": str(root / "issuer" / "home"),
            "SEALCARD_PROVIDER_CA_DIR": str(root / "provider" / "ca"),
            "SEALCARD_PROVIDER_PASSPHRASE": PASSPHRASE,
        }
        for party in PARTIES:
            env[f"SEALCARD_{party.upper()}_HOME"] = str(root / party / "home")
        world = cls(root, env)
        world.run("issuer", "init").ok()
        world.run("issuer", "hsm", "init").ok()
        world.run("issuer", "hsm", "start").ok()
        world.run("issuer", "keys", "init", "--name", NAMES["issuer"]).ok()
        world.run("provider", "ca", "init", "--out-dir", str(root / "provider" / "ca")).ok()
        for party in PARTIES:
            world.run(party, "keys", "init", "--name", NAMES[party]).ok()
        world.run("issuer", "keys", "export", "--out", str(world.cert("issuer"))).ok()
        world.run("provider", "keys", "export", "--out", str(world.cert("provider"))).ok()
        for party in ("bureau", "mailer", "shipper"):
            world.run(party, "keys", "export", "--out", str(world.cert(party))).ok()
        knows = {
            "provider": ("issuer",),
            "bureau": ("issuer", "mailer", "shipper"),
            "mailer": ("issuer", "bureau"),
            "shipper": ("issuer", "bureau"),
            "issuer": PARTIES,
        }
        for party, peers in knows.items():
            for peer in peers:
                world.run(party, "party", "add", "--role", peer, "--cert", str(world.cert(peer)))
        return world

    def cert(self, party: str) -> Path:
        return self.root / f"{party}.pem"

    def home(self, party: str) -> Path:
        return self.root / party / "home"

    def outbox(self, party: str) -> Path:
        return self.home(party) / "outbox"

    def run(self, *args: str, as_json: bool = True, timeout: float = TIMEOUT_S) -> Run:
        argv = ["sealcard", *args, *(["--json"] if as_json else [])]
        done = subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        payload: dict[str, Any] = {}
        if as_json and done.stdout.strip().startswith("{"):
            payload = json.loads(done.stdout)
        return Run(tuple(args), done.returncode, done.stdout, done.stderr, payload)

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["sealcard", *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def kill_after_line(self, process: subprocess.Popen[str], prefix: str) -> bool:
        """SIGKILL `process` as soon as a stderr line starts with `prefix`; False when it ended
        before such a line came."""
        assert process.stderr is not None
        for line in process.stderr:
            if line.startswith(prefix):
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=30)
                return True
        process.wait(timeout=30)
        return False

    def stop(self) -> None:
        self.run("issuer", "hsm", "stop", as_json=False)


def write_raw(
    path: Path,
    signer: KeyHolder,
    recipients: Sequence[Peer],
    header: FileHeader,
    rows: Iterable[Sequence[str]],
) -> None:
    """A sealed file whose header says what the caller wants (sender, version), signed by
    `signer` whoever that is: what a forger or a newer sealcard could write."""
    with atomic_output(path) as handle:
        sealed = SealedFileWriter(
            handle,  # type: ignore[arg-type]
            sender_key(signer),
            [p.certificate for p in recipients],
        )
        writer = CsvWriter(sealed.write, header)
        for row in rows:
            writer.row(row)
        writer.close()
        sealed.close()


def _write_as(
    role: str, home: str, path: str, recipients_pem: list[bytes], header: FileHeader,
    rows: list[list[str]],
) -> None:  # fmt: skip
    from cryptography import x509

    from sealcard.formats.party_cert import PartyBundle, party_identity
    from sealcard.formats.party_csv import Role
    from sealcard.parties.party_home import open_party

    recipients = []
    for pem in recipients_pem:
        certificate = x509.load_pem_x509_certificate(pem)  # the party certificate comes first
        recipients.append(Peer(PartyBundle(certificate, *party_identity(certificate))))
    with open_party(Role(role), Path(home)) as party:
        write_raw(Path(path), party.key, recipients, header, rows)


def write_as(
    role: str,
    home: Path,
    path: Path,
    recipients_pem: list[bytes],
    header: FileHeader,
    rows: list[list[str]],
) -> None:
    """`write_raw` signed by a party's key in its token, from a fresh process (a process
    opens one SoftHSM configuration only)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        pool.submit(_write_as, role, str(home), str(path), recipients_pem, header, rows).result(
            timeout=TIMEOUT_S
        )


def wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
