"""Sealed party files (formats/sealed_file.py): round trips, what OpenSSL makes of them, and
every way a damaged file is refused with its reason."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from soft_party import SoftPartyKey

from sealcard.formats.party_csv import Role
from sealcard.formats.sealed_file import (
    MalformedFileError,
    NotForUsError,
    SealedFileReader,
    SealedFileWriter,
    TamperedFileError,
    TruncatedFileError,
    receiver_key,
    sender_key,
)


@pytest.fixture(scope="module")
def alice() -> SoftPartyKey:
    return SoftPartyKey(Role.ISSUER, "alice")


@pytest.fixture(scope="module")
def bob() -> SoftPartyKey:
    return SoftPartyKey(Role.BUREAU, "bob")


@pytest.fixture(scope="module")
def carol() -> SoftPartyKey:
    return SoftPartyKey(Role.SHIPPER, "carol")


def seal(content: bytes, sender: SoftPartyKey, *to: SoftPartyKey, chunk: int = 1024) -> bytes:
    out = io.BytesIO()
    writer = SealedFileWriter(
        out, sender_key(sender), [r.certificate for r in to], chunk_bytes=chunk
    )
    for start in range(0, len(content), 333):
        writer.write(content[start : start + 333])
    writer.close()
    return out.getvalue()


def unseal(data: bytes, receiver: SoftPartyKey) -> tuple[bytes, object]:
    reader = SealedFileReader(io.BytesIO(data), receiver_key(receiver))
    content = b"".join(reader.content())
    return content, reader.finish()


CONTENT = b"".join(b"%06d,some row text,\xc3\xa9\r\n" % i for i in range(700))


@pytest.mark.parametrize("size", [0, 1, 1023, 1024, 1025, len(CONTENT)])
def test_round_trip_any_size(size: int, alice: SoftPartyKey, bob: SoftPartyKey) -> None:
    content, signer = unseal(seal(CONTENT[:size], alice, bob), bob)
    assert content == CONTENT[:size]
    assert signer == alice.certificate


def test_every_receiver_opens_it(
    alice: SoftPartyKey, bob: SoftPartyKey, carol: SoftPartyKey
) -> None:
    data = seal(CONTENT, alice, bob, carol)
    assert unseal(data, bob)[0] == CONTENT
    assert unseal(data, carol)[0] == CONTENT


def test_two_files_of_same_content_differ(alice: SoftPartyKey, bob: SoftPartyKey) -> None:
    assert seal(CONTENT, alice, bob) != seal(CONTENT, alice, bob)  # fresh key, nonce, ephemeral


def test_someone_else_cannot_open_it(
    alice: SoftPartyKey, bob: SoftPartyKey, carol: SoftPartyKey
) -> None:
    with pytest.raises(NotForUsError, match="addressed to another party"):
        SealedFileReader(io.BytesIO(seal(CONTENT, alice, bob)), receiver_key(carol))


def test_not_a_sealed_file(bob: SoftPartyKey) -> None:
    with pytest.raises(MalformedFileError, match="not a sealed party file"):
        SealedFileReader(io.BytesIO(b'{"cards": []}'), receiver_key(bob))
    with pytest.raises(TruncatedFileError):
        SealedFileReader(io.BytesIO(b""), receiver_key(bob))


@pytest.mark.parametrize("fraction", [0.001, 0.05, 0.3, 0.6, 0.9, 0.999])
def test_truncated_anywhere(fraction: float, alice: SoftPartyKey, bob: SoftPartyKey) -> None:
    data = seal(CONTENT, alice, bob)
    cut = data[: max(1, int(len(data) * fraction))]
    with pytest.raises((TruncatedFileError, MalformedFileError)) as caught:
        unseal(cut, bob)
    assert "truncated" in str(caught.value) or isinstance(caught.value, MalformedFileError)


def test_last_bytes_cut(alice: SoftPartyKey, bob: SoftPartyKey) -> None:
    data = seal(CONTENT, alice, bob)
    for cut in (1, 2, 17, 20):
        with pytest.raises(TruncatedFileError, match="truncated"):
            unseal(data[:-cut], bob)


def test_any_flipped_bit_is_refused(alice: SoftPartyKey, bob: SoftPartyKey) -> None:
    """A bit flipped anywhere is refused: mostly as tampered, never opened."""
    data = seal(CONTENT, alice, bob, chunk=4096)
    reasons: dict[str, int] = {}
    for position in range(0, len(data), max(1, len(data) // 97)):
        damaged = bytearray(data)
        damaged[position] ^= 0x10
        with pytest.raises(
            (TamperedFileError, MalformedFileError, NotForUsError, TruncatedFileError)
        ) as caught:
            unseal(bytes(damaged), bob)
        reasons[type(caught.value).__name__] = reasons.get(type(caught.value).__name__, 0) + 1
    # The ciphertext is most of the file: flips there must read as tampering.
    assert reasons.get("TamperedFileError", 0) > sum(reasons.values()) // 2, reasons


def test_bytes_appended(alice: SoftPartyKey, bob: SoftPartyKey) -> None:
    with pytest.raises(TamperedFileError, match="follow the end"):
        unseal(seal(CONTENT, alice, bob) + b"\x00", bob)


def test_reader_that_stops_early_still_learns_of_tampering(
    alice: SoftPartyKey, bob: SoftPartyKey
) -> None:
    data = bytearray(seal(CONTENT, alice, bob))
    data[-200] ^= 1
    reader = SealedFileReader(io.BytesIO(bytes(data)), receiver_key(bob))
    next(iter(reader.content()))
    with pytest.raises(TamperedFileError):
        reader.finish()


OPENSSL = shutil.which("openssl")


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_openssl_decrypts_and_verifies(
    tmp_path: Path, alice: SoftPartyKey, bob: SoftPartyKey, carol: SoftPartyKey
) -> None:
    """The commands of docs/files.md open a file with the keys alone."""
    (tmp_path / "file.p7m").write_bytes(seal(CONTENT, alice, bob, carol, chunk=65536))
    (tmp_path / "bob-key.pem").write_bytes(bob.key_pem())
    (tmp_path / "bob.pem").write_bytes(bob.cert_pem())
    (tmp_path / "alice.pem").write_bytes(alice.cert_pem())

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([OPENSSL, *args], cwd=tmp_path, capture_output=True, check=False)

    decrypted = run(
        "cms",
        "-decrypt",
        "-inform",
        "DER",
        "-in",
        "file.p7m",
        "-inkey",
        "bob-key.pem",
        "-recip",
        "bob.pem",
        "-out",
        "signed.der",
    )
    assert decrypted.returncode == 0, decrypted.stderr
    verified = run(
        "cms",
        "-verify",
        "-inform",
        "DER",
        "-in",
        "signed.der",
        "-CAfile",
        "alice.pem",
        "-out",
        "content.csv",
    )
    assert verified.returncode == 0, verified.stderr
    assert (tmp_path / "content.csv").read_bytes() == CONTENT
    # Signed by someone else: OpenSSL refuses it too.
    (tmp_path / "bob-ca.pem").write_bytes(bob.cert_pem())
    wrong = run(
        "cms",
        "-verify",
        "-inform",
        "DER",
        "-in",
        "signed.der",
        "-CAfile",
        "bob-ca.pem",
        "-out",
        "x.csv",
    )
    assert wrong.returncode != 0
