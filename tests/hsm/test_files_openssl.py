"""The OpenSSL commands of docs/files.md open a sealed file with the receiver's key in its
SoftHSM2 token (through OpenSSL's PKCS#11 engine), exactly as the page writes them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hsm_helpers import softhsm_available
from soft_party import SoftPartyKey

from sealcard.formats.party_cert import PartyBundle
from sealcard.formats.party_csv import FileKind, PartyName, Role
from sealcard.parties.exchange import Identity, Peer, write_party_file

pytestmark = pytest.mark.hsm

ROOT = Path(__file__).resolve().parents[2]
ENGINE = Path("/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so")
ROWS = [
    ["1", "00A1B2C3D4E5F607", "U0NCAQ==", "hsm", "post", "Ada Lovelace", "1 Street\nTown"],
    ["2", "00A1B2C3D4E5F608", "U0NCAQ==", "bureau", "post", "Alan Turing", "2 Street, Town"],
]


def _documented_commands() -> str:
    """The shell block under "Opening a file with OpenSSL"."""
    text = (ROOT / "docs" / "files.md").read_text()
    section = text.split("## Opening a file with OpenSSL", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


@pytest.mark.skipif(not softhsm_available(), reason="SoftHSM2 is not installed")
@pytest.mark.skipif(not ENGINE.exists(), reason="libengine-pkcs11-openssl is not installed")
def test_documented_openssl_commands_open_a_file_with_the_token_key(tmp_path: Path) -> None:
    home_dir = tmp_path / "bureau-home"
    # The token is made by the CLI, in its own process: a test process keeps one SoftHSM
    # configuration (the other tests of this folder use theirs).
    subprocess.run(
        [sys.executable, "-m", "sealcard.cli.main", "bureau", "keys", "init",
         "--name", "print-house", "--home", str(home_dir)],
        check=True, capture_output=True,
    )  # fmt: skip
    bureau = PartyBundle.parse((home_dir / "party" / "identity.pem").read_bytes())
    issuer = SoftPartyKey(Role.ISSUER, "bank")
    (home_dir / "peers").mkdir()
    (home_dir / "peers" / "issuer-bank.pem").write_bytes(issuer.cert_pem())
    sender = Identity(PartyName(Role.ISSUER, "bank"), issuer)
    write_party_file(
        home_dir / "personalization-B1.p7m",
        sender,
        [Peer(bureau)],
        FileKind.PERSONALIZATION,
        "B1",
        len(ROWS),
        ROWS,
    )

    commands = _documented_commands()
    assert "pin-value" not in commands  # the PIN never goes on a command line
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", commands],
        cwd=home_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    content = (home_dir / "content.csv").read_bytes()
    assert content.startswith(b"format,version,kind,batch,count,sender,recipients,file_id,")
    assert (
        b"\r\nsealcard-party-file,1,personalization,B1,2,issuer:bank,bureau:print-house," in content
    )
    assert b'Ada Lovelace,"1 Street\nTown"\r\n' in content and b"Alan Turing" in content

    # Checked against any other certificate, the signature does not verify.
    stranger = SoftPartyKey(Role.ISSUER, "bank")
    (home_dir / "stranger.pem").write_bytes(stranger.cert_pem())
    wrong = subprocess.run(
        ["openssl", "cms", "-verify", "-inform", "DER", "-in", "signed.der",
         "-CAfile", "stranger.pem", "-out", "other.csv"],
        cwd=home_dir, capture_output=True, check=False,
    )  # fmt: skip
    assert wrong.returncode != 0
    assert shutil.which("openssl")
