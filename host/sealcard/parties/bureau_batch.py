"""The bureau's batch: a personalization file from the issuer, every card in the readers
matched to its row by serial and personalized, all readers at once; result data for the
issuer, shipping data for the issuer and the shipper, the card-face print sheet and, in the
FIG. 2 variant (`pins="bureau"`), PIN letters for the mailer.

The job lives in HOME/jobs/BATCH.db (SQLite): the batch's rows (taken in only once the file
verified) and each card's outcome, written the moment it is known. So a run that is killed
loses nothing: the next run of the same file resumes with what is left, and every run writes
the outputs anew from all outcomes so far (the issuer applies them idempotently).

The outcome of each card is exact:
- personalized: PERSONALIZE answered 9000 (a failed read afterwards does not change that);
- already_personalized: the card is PERSONALIZED with this batch's serial;
- refused: the card refused the blob (its reason), or was in a state that cannot take it;
- not_reached: no reader held it in any run yet.

FIG. 2: the bureau makes PIN and PUK (CSPRNG) for a card, builds the PIN letter (encrypted to
the mailer's letter key, signed by the bureau) and stores it in the job before the card is
touched; the PIN and PUK exist in clear only in memory for that card. The letter of a card
that ends up personalized goes to the mailer.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sealcard.card.constants import State
from sealcard.card.session import SealcardSession
from sealcard.crypto.pin import generate_pin, generate_puk
from sealcard.errors import ConfigurationError, SealcardError
from sealcard.files import check_new_file, prepare_dir
from sealcard.formats.party_csv import (
    FileHeader,
    FileKind,
    PartyFileContentError,
    Role,
    b64,
    parse_serial,
    serial_hex,
    unb64,
    utc_now,
)
from sealcard.formats.pdf_sheets import FaceLine, print_sheet
from sealcard.hsm.pin_letter import PinLetterData, SignerCertificate, build_pin_letter
from sealcard.parties.exchange import (
    FileRefusedError,
    Peer,
    atomic_output,
    read_party_file,
    write_party_file,
)
from sealcard.parties.party_home import OpenParty
from sealcard.transport.errors import TransportError
from sealcard.transport.pcsc import PcscConnection

JOBS_DIR: Final = "jobs"
PINS_FROM_BLOB: Final = "hsm"
PINS_BY_BUREAU: Final = "bureau"
READ_RETRIES: Final = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS job (
    batch TEXT NOT NULL, file_id TEXT NOT NULL, issuer TEXT NOT NULL, count INTEGER NOT NULL,
    received_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cards (
    position INTEGER PRIMARY KEY, serial TEXT NOT NULL UNIQUE, blob BLOB NOT NULL,
    pins TEXT NOT NULL, mailer TEXT NOT NULL, name TEXT NOT NULL, address TEXT NOT NULL,
    outcome TEXT, reason TEXT, user_key TEXT, at TEXT, seq INTEGER UNIQUE, letter BLOB);
"""

# A reader held by a process that just died is free again once pcscd notices.
BUSY_WAIT_S: Final = 10.0


@dataclass(frozen=True)
class CardOutcome:
    """What one reader's card became in this run."""

    reader: str
    serial: bytes | None
    outcome: str  # personalized | already_personalized | refused | not_in_batch | failed
    reason: str
    seconds: float = 0.0


@dataclass
class BatchReport:
    batch: str
    resumed: bool
    cards: int
    outcomes: list[CardOutcome]
    totals: dict[str, int]
    files: dict[str, Path] = field(default_factory=dict)


class BureauJob:
    """A batch's job database (one connection shared by the reader threads, behind a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self.lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def header(self) -> tuple[str, str, str, int] | None:
        row = self._db.execute("SELECT batch, file_id, issuer, count FROM job").fetchone()
        return None if row is None else (str(row[0]), str(row[1]), str(row[2]), int(row[3]))

    def stage(self, header: FileHeader, rows: Iterator[list[str]]) -> int:
        """Take the batch's rows in, in one transaction the caller commits (`commit`)."""
        self._db.execute("BEGIN IMMEDIATE")
        self._db.execute(
            "INSERT INTO job VALUES (?, ?, ?, ?, ?)",
            (header.batch, header.file_id, str(header.sender), header.count, utc_now()),
        )
        count = 0
        for position, serial, blob, pins, mailer, name, address in rows:
            if pins not in (PINS_FROM_BLOB, PINS_BY_BUREAU):
                raise PartyFileContentError(f"card {serial}: pins is {pins!r}, not hsm or bureau")
            if not name.strip() or not address.strip():
                raise PartyFileContentError(f"card {serial}: no name or address")
            try:
                self._db.execute(
                    "INSERT INTO cards (position, serial, blob, pins, mailer, name, address)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        int(position),
                        serial_hex(parse_serial(serial)),
                        unb64(blob, f"card {serial}: sealed_blob"),
                        pins,
                        mailer,
                        name,
                        address,
                    ),
                )
            except (sqlite3.IntegrityError, ValueError) as exc:
                raise PartyFileContentError(
                    f"card {serial}: position or serial twice ({exc})"
                ) from None
            count += 1
        return count

    def commit(self) -> None:
        self._db.execute("COMMIT")

    def rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def pins_needed(self) -> set[str]:
        return {str(r[0]) for r in self._db.execute("SELECT DISTINCT pins FROM cards")}

    def mailers(self) -> set[str]:
        return {
            str(r[0])
            for r in self._db.execute("SELECT DISTINCT mailer FROM cards WHERE pins = 'bureau'")
        }

    def card(self, serial: bytes) -> dict[str, Any] | None:
        with self.lock:
            row = self._db.execute(
                "SELECT position, blob, pins, mailer, name, address, outcome FROM cards"
                " WHERE serial = ?",
                (serial_hex(serial),),
            ).fetchone()
        if row is None:
            return None
        keys = ("position", "blob", "pins", "mailer", "name", "address", "outcome")
        return dict(zip(keys, row, strict=True))

    def store_letter(self, serial: bytes, letter: bytes) -> None:
        with self.lock:
            self._db.execute(
                "UPDATE cards SET letter = ? WHERE serial = ?", (letter, serial_hex(serial))
            )

    def record(self, serial: bytes, outcome: str, reason: str, user_key: str | None) -> None:
        """Write a card's outcome now; a personalized card never goes back to refused."""
        with self.lock:
            current = self._db.execute(
                "SELECT outcome FROM cards WHERE serial = ?", (serial_hex(serial),)
            ).fetchone()
            if current is None:
                return
            done = current[0] in ("personalized", "already_personalized")
            if done:  # the first success stays; a later read may only add the user key
                if outcome in ("personalized", "already_personalized") and user_key:
                    self._db.execute(
                        "UPDATE cards SET user_key = COALESCE(user_key, ?) WHERE serial = ?",
                        (user_key, serial_hex(serial)),
                    )
                return
            seq = None
            if not done and outcome in ("personalized", "already_personalized"):
                seq = int(
                    self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM cards").fetchone()[0]
                )
            self._db.execute(
                "UPDATE cards SET outcome = ?, reason = ?, user_key = COALESCE(?, user_key),"
                " at = ?, seq = COALESCE(seq, ?) WHERE serial = ?",
                (outcome, reason[:200], user_key, utc_now(), seq, serial_hex(serial)),
            )

    def totals(self) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT COALESCE(outcome, 'not_reached'), COUNT(*) FROM cards GROUP BY 1"
        ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def result_rows(self) -> Iterator[list[str]]:
        for row in self._db.execute(
            "SELECT serial, COALESCE(outcome, 'not_reached'), COALESCE(reason, ''),"
            " COALESCE(user_key, ''), COALESCE(at, '') FROM cards ORDER BY position"
        ):
            yield [str(v) for v in row]

    def personalized(self) -> Iterator[tuple[int, str, str, str, bytes | None, str, str]]:
        """(seq, serial, name, address, letter, pins, mailer) in personalization order."""
        for row in self._db.execute(
            "SELECT seq, serial, name, address, letter, pins, mailer FROM cards"
            " WHERE seq IS NOT NULL ORDER BY seq"
        ):
            yield (
                int(row[0]),
                str(row[1]),
                str(row[2]),
                str(row[3]),
                None if row[4] is None else bytes(row[4]),
                str(row[5]),
                str(row[6]),
            )

    def count_personalized(self) -> int:
        return int(
            self._db.execute("SELECT COUNT(*) FROM cards WHERE seq IS NOT NULL").fetchone()[0]
        )


def _compressed(key: Any) -> str:
    return bytes(key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)).hex()


def _read_user_key(reader: str, extended: bool) -> str | None:
    """The user public key of a personalized card, reconnecting on transport errors."""
    for _ in range(READ_RETRIES):
        try:
            with PcscConnection.open(reader, exclusive=True, busy_wait=BUSY_WAIT_S) as connection:
                session = SealcardSession(connection, extended=extended)
                return _compressed(session.user_public_key())
        except TransportError:
            time.sleep(0.3)
        except SealcardError:
            return None
    return None


@dataclass(frozen=True)
class LetterMaker:
    """Builds the bureau's PIN letters (FIG. 2): signed by the bureau, to each mailer's key."""

    sign: Callable[[bytes], bytes]
    certificate: SignerCertificate
    mailer_keys: dict[str, rsa.RSAPublicKey]

    def letter(
        self, serial: bytes, name: str, address: str, mailer: str, pin: bytes, puk: bytes
    ) -> bytes:
        data = PinLetterData(serial, name, address, pin, puk)
        return build_pin_letter(data, self.mailer_keys[mailer], self.sign, self.certificate)


def _personalize_one(
    reader: str, job: BureauJob, letters: LetterMaker | None, extended: bool
) -> CardOutcome:
    start = time.perf_counter()
    serial: bytes | None = None
    try:
        with PcscConnection.open(reader, exclusive=True, busy_wait=BUSY_WAIT_S) as connection:
            session = SealcardSession(connection, extended=extended)
            status = session.refresh_status()
            serial = status.serial
            card = job.card(serial) if serial is not None else None
            if serial is None or card is None:
                return CardOutcome(reader, serial, "not_in_batch", "no row for this serial")
            if status.state == State.PERSONALIZED:
                key = _compressed(session.user_public_key())
                job.record(serial, "already_personalized", "card is PERSONALIZED", key)
                return CardOutcome(reader, serial, "already_personalized", "card is PERSONALIZED")
            if status.state != State.INITIALIZED:
                reason = f"card is {status.state_name}"
                job.record(serial, "refused", reason, None)
                return CardOutcome(reader, serial, "refused", reason)
            if card["pins"] == PINS_BY_BUREAU:
                if letters is None:
                    raise ConfigurationError("this batch needs --pin-source bureau")
                pin, puk = generate_pin(os.urandom), generate_puk(os.urandom)
                job.store_letter(
                    serial,
                    letters.letter(serial, card["name"], card["address"], card["mailer"], pin, puk),
                )
                session.put_pin_puk(pin, puk)
                del pin, puk
            try:
                session.personalize(bytes(card["blob"]))
            except TransportError as exc:
                return _after_lost_answer(reader, serial, job, extended, exc, start)
            # 9000: the card is personalized, whatever happens to the reads that follow.
            job.record(serial, "personalized", "personalized", None)
    except TransportError as exc:
        return CardOutcome(reader, serial, "failed", f"reader: {exc}", time.perf_counter() - start)
    except SealcardError as exc:
        if serial is not None and job.card(serial) is not None:
            job.record(serial, "refused", str(exc), None)
            return CardOutcome(reader, serial, "refused", str(exc), time.perf_counter() - start)
        return CardOutcome(reader, serial, "failed", str(exc), time.perf_counter() - start)
    assert serial is not None  # a card with a row has a serial
    user_key = _read_user_key(reader, extended)
    job.record(serial, "personalized", "personalized", user_key)
    return CardOutcome(reader, serial, "personalized", "personalized", time.perf_counter() - start)


def _after_lost_answer(
    reader: str, serial: bytes, job: BureauJob, extended: bool, exc: Exception, start: float
) -> CardOutcome:
    """PERSONALIZE got no answer: the card's state says whether it took the blob."""
    for _ in range(READ_RETRIES):
        time.sleep(0.3)
        try:
            with PcscConnection.open(reader, exclusive=True, busy_wait=BUSY_WAIT_S) as connection:
                session = SealcardSession(connection, extended=extended)
                state = session.refresh_status().state
                if state == State.PERSONALIZED:
                    key = _compressed(session.user_public_key())
                    job.record(serial, "personalized", "personalized", key)
                    return CardOutcome(
                        reader,
                        serial,
                        "personalized",
                        "personalized (answer lost)",
                        time.perf_counter() - start,
                    )
                return CardOutcome(
                    reader,
                    serial,
                    "failed",
                    f"no answer to PERSONALIZE ({exc}); the card is unchanged: run again",
                    time.perf_counter() - start,
                )
        except TransportError:
            continue
    return CardOutcome(reader, serial, "failed", f"card lost during PERSONALIZE ({exc}): run again")


def output_paths(out_dir: Path, batch: str, mailers: dict[str, Peer]) -> dict[str, Path]:
    paths = {
        "results": out_dir / f"results-{batch}.p7m",
        "shipping": out_dir / f"shipping-{batch}.p7m",
        "print_sheet": out_dir / f"print-sheet-{batch}.pdf",
    }
    for row_mailer, peer in sorted(mailers.items()):
        paths[f"pin_letters_{row_mailer}"] = out_dir / f"pin-letters-{batch}-{peer.name}.p7m"
    return paths


def open_job(party: OpenParty, path: Path) -> tuple[BureauJob, FileHeader | None, bool]:
    """The job of a personalization file: taken in now (verified, all or nothing) or resumed."""
    jobs = party.home.root / JOBS_DIR
    jobs.mkdir(mode=0o700, exist_ok=True)
    staging = jobs / f".incoming-{os.getpid()}.db"
    staging.unlink(missing_ok=True)
    job = BureauJob(staging)

    def seen(file_id: str) -> bool:
        return False  # a known file resumes its job (checked below), it is not a replay here

    try:
        received, _ = read_party_file(
            path, party.identity, party.peers, [FileKind.PERSONALIZATION], job.stage, seen=seen
        )
    except BaseException:
        job.rollback()
        job.close()
        staging.unlink(missing_ok=True)
        raise
    header = received.header
    final = jobs / f"{header.batch}.db"
    if final.exists():
        job.rollback()
        job.close()
        staging.unlink(missing_ok=True)
        resumed = BureauJob(final)
        known = resumed.header()
        if known is None or known[1] != header.file_id:
            resumed.close()
            raise FileRefusedError(
                f"{path.name}: batch {header.batch} was received before in another file; refused"
            )
        return resumed, header, True
    job.commit()
    job.close()
    os.replace(staging, final)
    party.journal.record(header, job=str(final))
    return BureauJob(final), header, False


def personalize_batch(
    party: OpenParty,
    path: Path,
    readers: list[str],
    out_dir: Path,
    *,
    pins: str = PINS_FROM_BLOB,
    shipper: str | None = None,
    extended: bool = False,
    on_card: Callable[[CardOutcome], None] | None = None,
) -> BatchReport:
    """Check the file, personalize every card of the batch in `readers` at once, write the
    outputs. Every output path is checked before the first card is touched."""
    prepare_dir(out_dir, what="the output folder", fix="give another --out-dir", mode=0o750)
    issuer_peer = party.peer(Role.ISSUER, None)
    shipper_peer = _optional_peer(party, Role.SHIPPER, shipper)
    job, _header, resumed = open_job(party, path)
    try:
        batch, _file_id, _issuer, count = job.header() or ("?", "", "", 0)
        needed = job.pins_needed()
        if PINS_BY_BUREAU in needed and pins != PINS_BY_BUREAU:
            raise ConfigurationError(
                f"batch {batch}: the issuer left PIN and PUK to the bureau: run with"
                " --pin-source bureau"
            )
        if pins == PINS_BY_BUREAU and PINS_FROM_BLOB in needed:
            raise ConfigurationError(
                f"batch {batch}: its cards get PIN and PUK from the issuer HSM; --pin-source bureau"
                " would not be used (the blob's PIN wins)"
            )
        letters = None
        wanted = job.mailers() if pins == PINS_BY_BUREAU else set()
        mailers = {m: party.peer(Role.MAILER, m or None) for m in wanted}
        if mailers:
            keys = {m: _letter_key(peer) for m, peer in mailers.items()}
            letters = LetterMaker(
                party.key.sign,
                SignerCertificate.load(party.key.certificate.public_bytes(Encoding.DER)),
                keys,
            )
        paths = output_paths(out_dir, batch, mailers)
        for what, output in paths.items():  # before the first card is touched
            check_new_file(
                output, what=what.replace("_", " "), fix="move it away or give another --out-dir"
            )
        outcomes: list[CardOutcome] = []
        lock = threading.Lock()

        def work(reader: str) -> None:
            outcome = _personalize_one(reader, job, letters, extended)
            with lock:
                outcomes.append(outcome)
                if on_card is not None:
                    on_card(outcome)

        if readers:
            with ThreadPoolExecutor(max_workers=len(readers)) as pool:
                list(pool.map(work, readers))
        _write_outputs(party, job, batch, paths, issuer_peer, shipper_peer, mailers)
        return BatchReport(batch, resumed, count, outcomes, job.totals(), paths)
    finally:
        job.close()


def _optional_peer(party: OpenParty, role: Role, name: str | None) -> Peer | None:
    if name is not None:
        return party.peer(role, name)
    candidates = party.peers.of_role(role)
    return candidates[0] if len(candidates) == 1 else None


def _letter_key(mailer: Peer) -> rsa.RSAPublicKey:
    certificate = mailer.bundle.extra
    key = None if certificate is None else certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise ConfigurationError(f"mailer {mailer.name}'s certificate file has no letter key")
    return key


def _write_outputs(
    party: OpenParty,
    job: BureauJob,
    batch: str,
    paths: dict[str, Path],
    issuer: Peer,
    shipper: Peer | None,
    mailers: dict[str, Peer],
) -> None:
    total = sum(1 for _ in job.result_rows())
    write_party_file(
        paths["results"],
        party.identity,
        [issuer],
        FileKind.RESULTS,
        batch,
        total,
        job.result_rows(),
    )
    done = job.count_personalized()
    to = [issuer] + ([shipper] if shipper is not None else [])
    write_party_file(
        paths["shipping"],
        party.identity,
        to,
        FileKind.SHIPPING,
        batch,
        done,
        (
            [str(seq), serial, name, address]
            for seq, serial, name, address, *_ in job.personalized()
        ),
    )
    with atomic_output(paths["print_sheet"], 0o644) as handle:
        print_sheet(
            handle,  # type: ignore[arg-type]
            batch,
            str(party.home.party),
            (FaceLine(seq, serial, name) for seq, serial, name, *_ in job.personalized()),
        )
    for mailer, mailer_peer in sorted(mailers.items()):
        rows = [
            [serial, b64(letter)]
            for _seq, serial, _n, _a, letter, pins, m in job.personalized()
            if pins == PINS_BY_BUREAU and m == mailer and letter is not None
        ]
        write_party_file(
            paths[f"pin_letters_{mailer}"],
            party.identity,
            [mailer_peer],
            FileKind.PIN_LETTERS,
            batch,
            len(rows),
            rows,
        )
