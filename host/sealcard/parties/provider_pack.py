"""The card provider's line: initialize every blank card present, all readers at once, and
write the device initialization data file for the issuer (steps A to D).

Each card initialized is appended to the pack's journal (HOME/packs/PACK.jsonl, public data
only, synced) before the next step, so a run that dies loses nothing: the next run with the
same pack takes the journal as it is, recovers a card that was closed but not yet journaled
(its attestation chains to our root and it holds the issuer's key), initializes the blank
cards, and writes the file from the journal, row by row.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sealcard.card.constants import State
from sealcard.card.session import SealcardSession
from sealcard.crypto.keys import public_keys_equal
from sealcard.errors import ConfigurationError, SealcardError
from sealcard.files import check_new_file, prepare_dir
from sealcard.formats.party_csv import FileKind, b64, check_batch_id, serial_hex
from sealcard.parties.exchange import Peer, write_party_file
from sealcard.parties.party_home import OpenParty
from sealcard.parties.provider import ProviderCA, check_card, initialize_card
from sealcard.transport.pcsc import PcscConnection

PACKS_DIR: Final = "packs"

# A reader held by a process that just died is free again once pcscd notices.
BUSY_WAIT_S: Final = 10.0


@dataclass(frozen=True)
class CardRecord:
    """One card's device initialization data (what the issuer needs; all public)."""

    serial: bytes
    device_public_key: bytes  # SPKI DER
    issuer_auth_public_key: bytes  # SPKI DER
    device_key_certificate: bytes | None
    issuer_auth_key_certificate: bytes
    signed_device_key: bytes | None

    def row(self) -> list[str]:
        return [
            serial_hex(self.serial),
            b64(self.device_public_key),
            b64(self.issuer_auth_public_key),
            "" if self.device_key_certificate is None else b64(self.device_key_certificate),
            b64(self.issuer_auth_key_certificate),
            "" if self.signed_device_key is None else b64(self.signed_device_key),
        ]

    def to_json(self) -> str:
        return json.dumps({"row": self.row()})

    @staticmethod
    def row_from_json(line: str) -> list[str]:
        row = json.loads(line)["row"]
        if not isinstance(row, list):
            raise ValueError("bad journal line")
        return [str(v) for v in row]


@dataclass(frozen=True)
class ReaderOutcome:
    """What one reader's card became in this run."""

    reader: str
    serial: bytes | None
    outcome: str  # initialized | recovered | already in the pack | skipped | failed
    reason: str
    seconds: float = 0.0


@dataclass(frozen=True)
class PackReport:
    pack: str
    path: Path
    cards: int
    outcomes: list[ReaderOutcome]
    file_id: str


def _spki(key: object) -> bytes:
    der: bytes = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]
    return der


class PackJournal:
    """The cards of one pack so far (one JSON line each, appended and synced)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.serials: set[str] = set()
        if path.exists():
            for row in self.rows():
                self.serials.add(row[0])

    def rows(self) -> Iterator[list[str]]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield CardRecord.row_from_json(line)

    def add(self, record: CardRecord) -> bool:
        with self._lock:
            name = serial_hex(record.serial)
            if name in self.serials:
                return False
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write(record.to_json() + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            self.serials.add(name)
            return True


def _record(
    serial: bytes,
    device_key: object,
    auth_key: object,
    device_cert: x509.Certificate | None,
    auth_cert: x509.Certificate | None,
    signed: bytes | None,
) -> CardRecord:
    if auth_cert is None:
        raise SealcardError("the card has no issuer authentication key certificate")
    return CardRecord(
        serial,
        _spki(device_key),
        _spki(auth_key),
        None if device_cert is None else device_cert.public_bytes(Encoding.DER),
        auth_cert.public_bytes(Encoding.DER),
        signed,
    )


def issuer_key_of(issuer: Peer) -> ec.EllipticCurvePublicKey:
    """The issuer public key to inject: the key of the issuer HSM certificate it handed over."""
    certificate = issuer.bundle.extra
    if certificate is None:
        raise ConfigurationError(f"issuer {issuer.name}'s certificate file lacks its HSM's")
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConfigurationError("the issuer HSM certificate holds no EC key")
    return key


def _one_reader(
    reader: str,
    ca: ProviderCA,
    issuer_key: ec.EllipticCurvePublicKey,
    journal: PackJournal,
    extended: bool,
) -> ReaderOutcome:
    import time

    start = time.perf_counter()
    serial: bytes | None = None
    try:
        with PcscConnection.open(reader, exclusive=True, busy_wait=BUSY_WAIT_S) as connection:
            session = SealcardSession(connection, extended=extended)
            status = session.refresh_status()
            serial = status.serial
            if status.state == State.BLANK:
                result = initialize_card(session, ca, issuer_key)
                serial = result.serial
                journal.add(
                    _record(
                        result.serial,
                        result.device_public_key,
                        result.issuer_auth_public_key,
                        result.device_key_certificate,
                        result.issuer_auth_key_certificate,
                        result.signed_device_key,
                    )
                )
                return ReaderOutcome(
                    reader, serial, "initialized", "step A done", time.perf_counter() - start
                )
            if status.state != State.INITIALIZED or serial is None:
                return ReaderOutcome(reader, serial, "skipped", f"card is {status.state_name}")
            if serial_hex(serial) in journal.serials:
                return ReaderOutcome(reader, serial, "already in the pack", "journaled before")
            data, report = check_card(session, ca.certificate)
            ours = data.issuer_public_key is not None and public_keys_equal(
                data.issuer_public_key, issuer_key
            )
            if not report.genuine or not ours:
                return ReaderOutcome(
                    reader, serial, "skipped", "initialized, but not by us for this issuer"
                )
            journal.add(
                _record(
                    serial,
                    data.device_public_key,
                    data.issuer_auth_public_key,
                    data.device_key_certificate,
                    data.issuer_auth_key_certificate,
                    data.signed_device_key,
                )
            )
            return ReaderOutcome(reader, serial, "recovered", "closed in an interrupted run")
    except SealcardError as exc:
        return ReaderOutcome(reader, serial, "failed", str(exc), time.perf_counter() - start)


def init_pack(
    party: OpenParty,
    ca: ProviderCA,
    pack: str,
    readers: list[str],
    issuer: Peer,
    out: Path,
    *,
    extended: bool = False,
    on_card: Callable[[ReaderOutcome], None] | None = None,
) -> PackReport:
    """Step A on every blank card in `readers` at once, then the pack's file for `issuer`."""
    try:
        check_batch_id(pack)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    prepare_dir(
        out.parent, what="the folder of the pack file", fix="give another --out", mode=0o750
    )
    check_new_file(out, what="the pack file", fix="give another --out")
    journal_dir = party.home.root / PACKS_DIR
    journal_dir.mkdir(mode=0o700, exist_ok=True)
    journal = PackJournal(journal_dir / f"{pack}.jsonl")
    issuer_key = issuer_key_of(issuer)
    outcomes: list[ReaderOutcome] = []
    lock = threading.Lock()

    def work(reader: str) -> None:
        outcome = _one_reader(reader, ca, issuer_key, journal, extended)
        with lock:
            outcomes.append(outcome)
            if on_card is not None:
                on_card(outcome)

    if readers:
        with ThreadPoolExecutor(max_workers=len(readers)) as pool:
            list(pool.map(work, readers))
    count = len(journal.serials)
    if count == 0:
        raise ConfigurationError(f"pack {pack} has no cards: no blank card was initialized")
    header = write_party_file(
        out, party.identity, [issuer], FileKind.DEVICE_INIT, pack, count, journal.rows()
    )
    return PackReport(pack, out, count, outcomes, header.file_id)
