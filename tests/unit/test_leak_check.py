"""tools/leak_check.py (the demo's last step) finds each kind of secret in each form it
searches, and refuses to pass when it has nothing to look for."""

from __future__ import annotations

import base64
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

from sealcard.crypto.bip32 import ExtendedPrivateKey
from sealcard.crypto.secret_sharing import split_seed
from sealcard.formats.pdf_sheets import LetterPage, pin_letters

ROOT = Path(__file__).resolve().parents[2]
BASE = "m/44'/0'/0'/0"
PIN, PUK = "482913", "60418275"


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("leak_check", ROOT / "tools" / "leak_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


leak_check = _tool()


@pytest.fixture
def work(tmp_path: Path) -> tuple[Path, bytes]:
    seed = os.urandom(32)
    shares = tmp_path / "work" / "custodians"
    shares.mkdir(parents=True)
    for number, share in enumerate(split_seed(seed, 2, 3), start=1):
        (shares / f"share-{number}-of-3.txt").write_text(share + "\n")
    for party in ("issuer", "bureau", "shipper"):
        (tmp_path / "work" / party).mkdir()
        (tmp_path / "work" / party / "notes.txt").write_text("batch 7, 1 card, 2026-12-01\n")
    outbox = tmp_path / "work" / "mailer" / "outbox"
    outbox.mkdir(parents=True)
    with (outbox / "pin-letters-B1-issuer.pdf").open("wb") as handle:
        pin_letters(handle, "mailer:post", [LetterPage("00A1", "Ada", "1 Street", PIN, PUK)])
    return tmp_path / "work", seed


def _run(work: Path, *extra: str) -> int:
    options = ["--shares", str(work / "custodians"), "--derivation-base", BASE, "--indexes", "3"]
    code: int = leak_check.main([str(work), *options, *extra])
    return code


def _user_key(seed: bytes, index: int) -> bytes:
    key: bytes = ExtendedPrivateKey.from_seed(seed).derive(BASE).child(index).private_key
    return key


def test_clean_folders_pass(work: tuple[Path, bytes], capsys: pytest.CaptureFixture[str]) -> None:
    folder, seed = work
    public = ExtendedPrivateKey.from_seed(seed).derive(BASE).child(2).public_key.hex()
    assert _run(folder, "--expect-pubkey", public) == 0
    out = capsys.readouterr().out
    assert "1 PIN(s) and 1 PUK(s)" in out
    assert "custodians" not in out  # the shares are not a party folder
    assert "LEAK" not in out


@pytest.mark.parametrize(
    "form",
    [
        lambda key: key,
        lambda key: key.hex().encode(),
        lambda key: key.hex().upper().encode(),
        lambda key: base64.b64encode(key),
        lambda key: base64.b64encode(b"x" + key + b"yz"),  # inside a longer base64 text
        lambda key: base64.b64encode(b"xy" + key),
    ],
)
def test_a_user_key_in_any_form_is_found(
    work: tuple[Path, bytes], capsys: pytest.CaptureFixture[str], form: object
) -> None:
    folder, seed = work
    planted = form(_user_key(seed, 1))  # type: ignore[operator]
    (folder / "bureau" / "job.db").write_bytes(b"\x00header" + planted + b"\x00trailer")
    assert _run(folder) == 1
    assert f"LEAK bureau/job.db: user private key {BASE}/1" in capsys.readouterr().out


def test_the_seed_is_found(work: tuple[Path, bytes], capsys: pytest.CaptureFixture[str]) -> None:
    folder, seed = work
    (folder / "issuer" / "backup.bin").write_bytes(seed)
    assert _run(folder) == 1
    assert "LEAK issuer/backup.bin: the issuer HSM seed" in capsys.readouterr().out


def test_a_pin_outside_the_letters_is_found_a_longer_number_is_not(
    work: tuple[Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _ = work
    (folder / "shipper" / "ids.txt").write_text(f"order 9{PIN}1 done\n")  # not the PIN
    assert _run(folder) == 0
    (folder / "shipper" / "log.txt").write_text(f"debug: pin={PIN}\n")
    assert _run(folder) == 1
    assert "LEAK shipper/log.txt: a PIN" in capsys.readouterr().out
    (folder / "shipper" / "log.txt").unlink()
    (folder / "mailer" / "outbox" / "journal.txt").write_text(f"puk {PUK}\n")
    assert _run(folder) == 1  # in the mailer's folder too, outside its letter PDFs
    assert "LEAK mailer/outbox/journal.txt: a PUK" in capsys.readouterr().out


def test_a_clear_pem_private_key_is_found(
    work: tuple[Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _ = work
    (folder / "bureau" / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nMIG...\n")
    assert _run(folder) == 1
    assert "LEAK bureau/key.pem: an unencrypted PEM private key" in capsys.readouterr().out


def test_a_clear_key_a_service_must_read_is_allowed_with_mode_0600_only(
    work: tuple[Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _ = work
    key = folder / "issuer" / "tls" / "server-key.pem"
    key.parent.mkdir()
    key.write_text("-----BEGIN PRIVATE KEY-----\nMIG...\n")
    key.chmod(0o600)
    allow = ("--allow-clear-key", "issuer/tls/server-key.pem")
    assert _run(folder) == 1  # not named: a finding
    assert _run(folder, *allow) == 0
    key.chmod(0o644)
    assert _run(folder, *allow) == 1
    assert "LEAK issuer/tls/server-key.pem: a private key readable by others" in (
        capsys.readouterr().out
    )


def test_nothing_to_look_for_is_a_failure(work: tuple[Path, bytes]) -> None:
    folder, _ = work
    other = ExtendedPrivateKey.from_seed(os.urandom(32)).public_key.hex()
    assert _run(folder, "--expect-pubkey", other) == 1  # not the cards' keys
    for pdf in (folder / "mailer").rglob("*.pdf"):
        pdf.unlink()
    assert _run(folder) == 1  # no letter: no PIN to search for


def test_a_pin_printed_on_another_pdf_is_found(
    work: tuple[Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """A PDF keeps its text compressed, in glyph codes: the PIN is in no byte of the file, so
    the check reads the text a person would see."""
    folder, _ = work
    sheet = folder / "bureau" / "print-sheet-B1.pdf"
    with sheet.open("wb") as handle:
        pin_letters(handle, "bureau:print-house", [LetterPage("00A1", "Ada", "1 St", PIN, PUK)])
    assert PIN.encode() not in sheet.read_bytes()
    assert _run(folder) == 1
    out = capsys.readouterr().out
    assert "LEAK bureau/print-sheet-B1.pdf: a PIN" in out
    assert "LEAK bureau/print-sheet-B1.pdf: a PUK" in out


def test_a_token_pin_outside_its_file_is_found(
    work: tuple[Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _ = work
    secrets = folder / "bureau" / "home" / "secrets"
    secrets.mkdir(parents=True)
    (secrets / "sealcard-bureau.user-pin").write_text("0fd68aaadd7feef925b5003\n")
    assert _run(folder) == 0  # in its own file
    (folder / "bureau" / "home" / "debug.log").write_text("login pin 0fd68aaadd7feef925b5003\n")
    assert _run(folder) == 1
    out = capsys.readouterr().out
    assert "LEAK bureau/home/debug.log: the token PIN bureau/home/secrets/sealcard-bureau" in out
