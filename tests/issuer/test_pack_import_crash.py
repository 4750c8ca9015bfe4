"""`sealcard issuer pack import` killed with SIGKILL while it takes in a pack file: the stock
holds the whole pack or none of it, and running the same command again finishes the job
(the file was not recorded as taken in, so it is no replay).

The kill instants are fractions of a measured import of the same size, so they land before,
during and near the end of the work on a fast or a slow machine alike. Every HSM step runs in
the child processes (this process never opens a SoftHSM token)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fake_cards import attested_rows
from soft_party import SoftPartyKey

from sealcard.formats.party_cert import PartyBundle
from sealcard.formats.party_csv import FileKind, Role
from sealcard.parties.exchange import Identity, Peer, write_party_file
from sealcard.parties.provider import ProviderCA

pytestmark = pytest.mark.issuer

CARDS = 600
KILL_AT = (0.35, 0.6, 0.85)


def _sealcard(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "sealcard.cli.main", "issuer", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def _stock(home: Path) -> dict[str, int]:
    packs: list[dict[str, Any]] = json.loads(_sealcard(home, "pack", "list", "--json").stdout)[
        "packs"
    ]
    return {p["pack_serial"]: p["cards"] for p in packs}


def _import_argv(home: Path, path: Path) -> list[str]:
    return [sys.executable, "-m", "sealcard.cli.main", "issuer", "pack", "import",
            "--file", str(path), "--home", str(home)]  # fmt: skip


@pytest.mark.skipif(shutil.which("softhsm2-util") is None, reason="SoftHSM2 is not installed")
def test_pack_import_killed_then_run_again(tmp_path: Path) -> None:
    home = tmp_path / "issuer"
    _sealcard(home, "init")
    _sealcard(home, "hsm", "init")
    _sealcard(home, "keys", "init", "--name", "bank", "--out", str(tmp_path / "issuer.pem"))
    ca = ProviderCA.create(tmp_path / "ca", b"crash test passphrase")
    provider = SoftPartyKey(Role.PROVIDER, "acme")
    ca_pem = (tmp_path / "ca" / "root.pem").read_bytes()
    (tmp_path / "provider.pem").write_bytes(provider.cert_pem() + ca_pem)
    _sealcard(home, "party", "add", "--role", "provider", "--cert", str(tmp_path / "provider.pem"))
    issuer = Peer(PartyBundle.parse((tmp_path / "issuer.pem").read_bytes()))
    me = Identity(provider.party, provider)

    def pack_file(number: int) -> Path:
        path = tmp_path / f"device-init-CRASH-{number}.p7m"
        rows = attested_rows(ca, CARDS, prefix=number)
        write_party_file(path, me, [issuer], FileKind.DEVICE_INIT, f"CRASH-{number}", CARDS, rows)
        return path

    start = time.monotonic()
    _sealcard(home, "pack", "import", "--file", str(pack_file(0)))
    whole = time.monotonic() - start
    assert _stock(home) == {"CRASH-0": CARDS}

    interrupted = 0
    for number, fraction in enumerate(KILL_AT, start=1):
        path = pack_file(number)
        process = subprocess.Popen(
            _import_argv(home, path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        time.sleep(whole * fraction)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        stock = _stock(home)
        name = f"CRASH-{number}"
        assert stock.get(name) in (None, CARDS), stock  # all of the pack or none of it
        if name not in stock:
            interrupted += 1
            # the same file again: not a replay
            _sealcard(home, "pack", "import", "--file", str(path))
        else:
            again = _sealcard(home, "pack", "import", "--file", str(path), check=False)
            assert again.returncode == 1 and "already imported" in again.stderr
        assert _stock(home)[name] == CARDS
    assert interrupted >= 1, "no kill landed before the import committed"
    assert sum(_stock(home).values()) == CARDS * (len(KILL_AT) + 1)
