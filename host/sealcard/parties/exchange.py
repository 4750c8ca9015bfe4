"""Writing and reading sealed party files, for every party (docs/files.md).

`write_party_file` streams rows into a sealed file under a temporary name and renames it into
place only when it is complete and on disk. `read_party_file` opens a file, checks what it can
from its header at once (kind, addressed to us, known sender of the right role, not seen
before), hands the rows to the caller's `consume`, then checks the tag and the signature and
that the signer is the registered sender. `consume` stages what it reads; the caller commits
only after `read_party_file` returned. Whatever goes wrong, the reason is one line, and a
complaint about the content is reported as tampering when the file turns out not authentic.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from cryptography import x509

from sealcard.errors import ConfigurationError, SealcardError
from sealcard.formats.party_cert import PartyBundle, fingerprint
from sealcard.formats.party_csv import (
    COLUMNS,
    PIN_LETTER_SENDERS,
    CsvReader,
    CsvWriter,
    FileHeader,
    FileKind,
    PartyName,
    Role,
    a,
)
from sealcard.formats.sealed_file import (
    KeyHolder,
    SealedFileError,
    SealedFileReader,
    SealedFileWriter,
    receiver_key,
    sender_key,
)

T = TypeVar("T")
TEMP_PREFIX = ".partial-"
FILE_MODE = 0o600


class FileRefusedError(SealcardError):
    """A party file was refused; nothing of it was taken in. The message is the reason."""


class ReplayError(FileRefusedError):
    """The same file (by its file id) was taken in before."""


class UnknownSignerError(FileRefusedError):
    """Signed by a certificate that is not a registered party."""


class WrongRoleError(FileRefusedError):
    """Signed by a registered party whose role does not send this kind of file."""


@dataclass(frozen=True)
class Peer:
    """A registered party: its name, role and the bundle it handed over."""

    bundle: PartyBundle

    @property
    def role(self) -> Role:
        return self.bundle.role

    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def party(self) -> PartyName:
        return PartyName(self.bundle.role, self.bundle.name)

    @property
    def certificate(self) -> x509.Certificate:
        return self.bundle.party


class PeerDirectory(Protocol):
    """The parties one party knows (a folder, or the issuer's records)."""

    def find(self, party: PartyName) -> Peer | None: ...

    def find_certificate(self, certificate: x509.Certificate) -> Peer | None: ...


@dataclass(frozen=True)
class Identity:
    """Who we are in files: our name and the key holder (token) behind our certificate."""

    party: PartyName
    key: KeyHolder


# -- writing -----------------------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: Path, mode: int = FILE_MODE) -> Iterator[object]:
    """A binary file that appears at `path` only complete and synced (temporary name, fsync,
    rename, fsync of the folder); on any error the temporary file is removed."""
    temporary = path.with_name(f"{TEMP_PREFIX}{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb", buffering=256 * 1024) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


class StagedFile:
    """A file written under a temporary name in `directory`, put in place by `commit(path)`
    once what it was made from proved authentic; removed if it is never committed."""

    def __init__(self, directory: Path, mode: int = FILE_MODE) -> None:
        self.directory = directory
        self._temporary = directory / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        fd = os.open(self._temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        self.handle = os.fdopen(fd, "wb", buffering=256 * 1024)
        self._committed = False

    def commit(self, path: Path) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        self._temporary.replace(path)
        _fsync_dir(path.parent)
        self._committed = True

    def __enter__(self) -> StagedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._committed:
            self.handle.close()
            with contextlib.suppress(OSError):
                self._temporary.unlink()


def write_party_file(
    path: Path,
    me: Identity,
    recipients: Sequence[Peer],
    kind: FileKind,
    batch: str,
    count: int,
    rows: Iterable[Sequence[str]],
) -> FileHeader:
    """Seal `count` rows of `kind` from us to `recipients` into `path` (atomically)."""
    header = FileHeader(kind, batch, count, me.party, tuple(p.party for p in recipients))
    with atomic_output(path) as handle:
        sealed = SealedFileWriter(
            handle,  # type: ignore[arg-type]
            sender_key(me.key),
            [p.certificate for p in recipients],
        )
        writer = CsvWriter(sealed.write, header)
        for row in rows:
            writer.row(row)
        writer.close()
        sealed.close()
    return header


# -- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """A file taken in: its header, the registered sender, and what `consume` returned."""

    header: FileHeader
    sender: Peer
    path: Path


def _expected_senders(kind: FileKind) -> frozenset[Role]:
    return PIN_LETTER_SENDERS if kind is FileKind.PIN_LETTERS else frozenset({COLUMNS[kind].sender})


def read_party_file(
    path: Path,
    me: Identity,
    peers: PeerDirectory,
    kinds: Sequence[FileKind],
    consume: Callable[[FileHeader, Iterator[list[str]]], T],
    *,
    seen: Callable[[str], bool],
) -> tuple[Received, T]:
    """Open a sealed file addressed to us and give its rows to `consume`; FileRefusedError
    (or SealedFileError) with the reason if the file is not to be taken in."""
    try:
        source = path.open("rb")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from None
    with source:
        try:
            reader = SealedFileReader(source, receiver_key(me.key))
        except SealedFileError as exc:
            raise FileRefusedError(f"{path.name}: {exc}") from None
        try:
            csv_reader = CsvReader(reader.content())
            header = csv_reader.header
            sender = _check_header(header, me, peers, kinds, seen)
            result = consume(header, csv_reader.rows())
        except (SealcardError, ValueError) as complaint:
            # Authentic content that is wrong, or a damaged file? The tag and signature say.
            try:
                reader.finish()
            except SealedFileError as exc:
                raise FileRefusedError(f"{path.name}: {exc}") from None
            if isinstance(complaint, FileRefusedError):
                raise FileRefusedError(f"{path.name}: {complaint}") from None
            raise FileRefusedError(f"{path.name}: {complaint}") from complaint
        try:
            signer = reader.finish()
        except SealedFileError as exc:
            raise FileRefusedError(f"{path.name}: {exc}") from None
        _check_signer(signer, sender, peers, header, path)
    return Received(header, sender, path), result


def _check_header(
    header: FileHeader,
    me: Identity,
    peers: PeerDirectory,
    kinds: Sequence[FileKind],
    seen: Callable[[str], bool],
) -> Peer:
    if header.kind not in kinds:
        wanted = " or ".join(k.value for k in kinds)
        raise FileRefusedError(f"this is a {header.kind.value} file; expected {wanted}")
    if not header.addressed_to(me.party):
        to = ", ".join(str(r) for r in header.recipients)
        raise FileRefusedError(f"addressed to another party ({to}), not to {me.party}")
    sender = peers.find(header.sender)
    if sender is None:
        raise UnknownSignerError(
            f"sent by {header.sender}, an unknown party: register its certificate first"
            " (`party add`)"
        )
    if sender.role not in _expected_senders(header.kind):
        raise WrongRoleError(f"a {header.kind.value} file cannot come from {a(sender.role)}")
    if seen(header.file_id):
        raise ReplayError(
            f"already imported: file {header.file_id} ({header.kind.value} {header.batch})"
        )
    return sender


def _check_signer(
    signer: x509.Certificate, sender: Peer, peers: PeerDirectory, header: FileHeader, path: Path
) -> None:
    if fingerprint(signer) == fingerprint(sender.certificate):
        return
    actual = peers.find_certificate(signer)
    if actual is None:
        raise UnknownSignerError(
            f"{path.name}: signed by an unknown party (certificate {fingerprint(signer)[:16]}),"
            f" not by {header.sender}"
        )
    if actual.role not in _expected_senders(header.kind):
        raise WrongRoleError(
            f"{path.name}: signed by {actual.party}, {a(actual.role)}; a"
            f" {header.kind.value} file must come from {a(COLUMNS[header.kind].sender)}"
        )
    raise UnknownSignerError(
        f"{path.name}: signed by {actual.party}, but the file says it is from {header.sender}"
    )
