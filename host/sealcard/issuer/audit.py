"""The audit log's hash chain, its signed checkpoints, and their verification (docs/audit.md).

Every entry carries ``entry_hash = SHA-256(previous entry_hash || seq || fields)``; the first
entry's predecessor is a genesis value bound to the database's random ``chain_id``. The one row
of ``audit_chain`` holds the head (last seq and hash): appending reads it, locked (``FOR
UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already excludes other writers), so
concurrent writers extend one linear chain. Checkpoints sign ``(chain_id, seq, entry_hash)``
with a key in the issuer-system HSM; the signing itself is done by the caller (this layer does
not talk PKCS#11), verification only needs the public key.

`verify_log` works on any source of entries and checkpoints: the database (`DatabaseSource`)
or an export file (`ExportSource`, format ``sealcard-audit-export`` version 1).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sealcard.crypto.keys import unreadable
from sealcard.issuer.db import Database, Dialect, Tx
from sealcard.issuer.errors import IssuerError

HASH_LENGTH = 32
CHAIN_ID_LENGTH = 16
_GENESIS_DOMAIN = b"sealcard audit chain v1\x00"
_CHECKPOINT_DOMAIN = b"sealcard audit checkpoint v1\x00"
EXPORT_FORMAT = "sealcard-audit-export"
EXPORT_VERSION = 1
_PAGE = 5000

#: What a caller appends: (at, actor, action, order_id, card_serial hex, detail JSON text).
EntryFields = tuple[str, str, str, int | None, str | None, str | None]


class AuditFormatError(IssuerError):
    """An audit export file is not in the documented format (docs/audit.md)."""


@dataclass(frozen=True)
class ChainedEntry:
    """One audit log entry as stored, with its place in the chain."""

    id: int
    seq: int | None  # None: the row was put there outside the chain (never by sealcard)
    at: str
    actor: str
    action: str
    order_id: int | None
    card_serial: str | None
    detail: str | None
    entry_hash: bytes | None

    @property
    def fields(self) -> EntryFields:
        return (self.at, self.actor, self.action, self.order_id, self.card_serial, self.detail)


@dataclass(frozen=True)
class Checkpoint:
    """A signature by the issuer-system HSM's audit key over the chain at `seq`."""

    seq: int
    entry_hash: bytes
    signed_at: str
    key_id: str  # hex SHA-256 of the signing key's SubjectPublicKeyInfo DER
    signature: bytes  # DER ECDSA P-256 SHA-256 over `checkpoint_message`


@dataclass(frozen=True)
class ChainHead:
    """The database's chain identity and its last entry."""

    chain_id: bytes
    seq: int
    entry_hash: bytes


# -- the hash chain ------------------------------------------------------------------------------


def _field(value: str | None) -> bytes:
    if value is None:
        return b"\x00"
    raw = value.encode("utf-8")
    return b"\x01" + len(raw).to_bytes(4, "big") + raw


def genesis_hash(chain_id: bytes) -> bytes:
    """The predecessor of entry 1: SHA-256("sealcard audit chain v1" 00 || chain_id)."""
    return hashlib.sha256(_GENESIS_DOMAIN + chain_id).digest()


def entry_hash(previous: bytes, seq: int, fields: EntryFields) -> bytes:
    """SHA-256(previous || seq as 8 bytes || each field: 00, or 01 || length (4) || UTF-8)."""
    at, actor, action, order_id, card_serial, detail = fields
    h = hashlib.sha256(previous)
    h.update(seq.to_bytes(8, "big"))
    for value in (at, actor, action, None if order_id is None else str(order_id), card_serial):
        h.update(_field(value))
    h.update(_field(detail))
    return h.digest()


def checkpoint_message(chain_id: bytes, seq: int, hash_at_seq: bytes, signed_at: str) -> bytes:
    """What a checkpoint signs: domain || chain_id (16) || seq (8) || entry hash (32) || time."""
    return _CHECKPOINT_DOMAIN + chain_id + seq.to_bytes(8, "big") + hash_at_seq + _field(signed_at)


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """Hex SHA-256 of the key's SubjectPublicKeyInfo DER."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def read_head(tx: Tx, *, lock: bool = False) -> ChainHead:
    """The chain head; with `lock`, the head row stays locked until `tx` ends (PostgreSQL)."""
    suffix = " FOR UPDATE" if lock and tx.dialect is Dialect.POSTGRES else ""
    row = tx.one(f"SELECT chain_id, seq, head_hash FROM audit_chain WHERE id = 1{suffix}")  # noqa: S608
    if row is None:
        raise IssuerError("the audit chain head is missing: the schema is damaged")
    return ChainHead(bytes.fromhex(str(row[0])), int(row[1]), bytes(row[2]))


def append(tx: Tx, entries: Sequence[EntryFields]) -> None:
    """Append entries to the audit log, chained, inside the caller's transaction.

    Takes the chain head's row lock, so call it as the last write of a transaction: the lock is
    held until commit and every other appender waits for it (only for it: their other row
    locks and work are not serialised).
    """
    if not entries:
        return
    head = read_head(tx, lock=True)
    seq, previous = head.seq, head.entry_hash
    rows: list[tuple[Any, ...]] = []
    for fields in entries:
        seq += 1
        previous = entry_hash(previous, seq, fields)
        rows.append((seq, *fields, previous))
    tx.executemany(
        "INSERT INTO audit_log (seq, at, actor, action, order_id, card_serial, detail,"
        " entry_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    tx.execute("UPDATE audit_chain SET seq = ?, head_hash = ? WHERE id = 1", (seq, previous))


def add_checkpoint(tx: Tx, checkpoint: Checkpoint) -> bool:
    """Store a checkpoint; False if one exists for that seq already."""
    tx.execute(
        "INSERT INTO audit_checkpoints (seq, entry_hash, signed_at, key_id, signature)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (seq) DO NOTHING",
        (
            checkpoint.seq,
            checkpoint.entry_hash,
            checkpoint.signed_at,
            checkpoint.key_id,
            checkpoint.signature,
        ),
    )
    return tx.rowcount == 1


def last_checkpoint_seq(tx: Tx) -> int:
    """The seq of the newest checkpoint, 0 when there is none."""
    value = tx.scalar("SELECT MAX(seq) FROM audit_checkpoints")
    return 0 if value is None else int(value)


# -- sources of entries: the database, or an export file ------------------------------------


class AuditSource(Protocol):
    """Where `verify_log` reads from."""

    def head(self) -> ChainHead: ...

    def entries(self) -> Iterator[ChainedEntry]: ...

    def unchained(self) -> list[ChainedEntry]: ...

    def checkpoints(self) -> list[Checkpoint]: ...


def _entry(row: Sequence[Any]) -> ChainedEntry:
    return ChainedEntry(
        id=int(row[0]),
        seq=None if row[1] is None else int(row[1]),
        at=str(row[2]),
        actor=str(row[3]),
        action=str(row[4]),
        order_id=None if row[5] is None else int(row[5]),
        card_serial=row[6],
        detail=row[7],
        entry_hash=None if row[8] is None else bytes(row[8]),
    )


_ENTRY_COLUMNS = "id, seq, at, actor, action, order_id, card_serial, detail, entry_hash"


class DatabaseSource:
    """The audit log of a database, read in pages by seq (memory stays flat)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def head(self) -> ChainHead:
        with self.db.transaction() as tx:
            return read_head(tx)

    def entries(self) -> Iterator[ChainedEntry]:
        after = -1
        while True:
            with self.db.transaction() as tx:
                rows = tx.all(
                    f"SELECT {_ENTRY_COLUMNS} FROM audit_log WHERE seq > ?"  # noqa: S608
                    " ORDER BY seq LIMIT ?",
                    (after, _PAGE),
                )
            if not rows:
                return
            for row in rows:
                yield _entry(row)
            after = int(rows[-1][1])

    def unchained(self) -> list[ChainedEntry]:
        with self.db.transaction() as tx:
            rows = tx.all(
                f"SELECT {_ENTRY_COLUMNS} FROM audit_log WHERE seq IS NULL ORDER BY id LIMIT 10"  # noqa: S608
            )
        return [_entry(r) for r in rows]

    def checkpoints(self) -> list[Checkpoint]:
        with self.db.transaction() as tx:
            rows = tx.all(
                "SELECT seq, entry_hash, signed_at, key_id, signature FROM audit_checkpoints"
                " ORDER BY seq"
            )
        return [Checkpoint(int(r[0]), bytes(r[1]), str(r[2]), str(r[3]), bytes(r[4])) for r in rows]


# -- the export file -------------------------------------------------------------------------------


def write_export(source: AuditSource, out: IO[str], exported_at: str) -> tuple[int, int]:
    """Write the log as JSON Lines (docs/audit.md): a header, every entry by seq, every
    checkpoint. Returns (entries, checkpoints)."""
    head = source.head()
    checkpoints = source.checkpoints()
    header = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "chain_id": head.chain_id.hex(),
        "head_seq": head.seq,
        "head_hash": head.entry_hash.hex(),
        "exported_at": exported_at,
    }
    out.write(json.dumps(header, sort_keys=True) + "\n")
    count = 0
    for entry in source.entries():
        out.write(json.dumps(_entry_json(entry), sort_keys=True) + "\n")
        count += 1
    for cp in checkpoints:
        line = {
            "type": "checkpoint",
            "seq": cp.seq,
            "hash": cp.entry_hash.hex(),
            "signed_at": cp.signed_at,
            "key_id": cp.key_id,
            "signature": cp.signature.hex(),
        }
        out.write(json.dumps(line, sort_keys=True) + "\n")
    return count, len(checkpoints)


def _entry_json(entry: ChainedEntry) -> dict[str, Any]:
    return {
        "type": "entry",
        "id": entry.id,
        "seq": entry.seq,
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action,
        "order_id": entry.order_id,
        "card_serial": entry.card_serial,
        "detail": entry.detail,
        "hash": None if entry.entry_hash is None else entry.entry_hash.hex(),
    }


class ExportSource:
    """An export file as a source for `verify_log` (read twice: entries are not held)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with path.open(encoding="utf-8") as f:
                first = f.readline()
        except OSError as exc:
            raise AuditFormatError(f"cannot read {path}: {exc.strerror}") from exc
        header = self._json(first, 1)
        if header.get("format") != EXPORT_FORMAT or header.get("version") != EXPORT_VERSION:
            raise AuditFormatError(f"{path} is not a {EXPORT_FORMAT} version {EXPORT_VERSION} file")
        try:
            self._head = ChainHead(
                bytes.fromhex(header["chain_id"]),
                int(header["head_seq"]),
                bytes.fromhex(header["head_hash"]),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise AuditFormatError(f"{path}, line 1: bad header field ({exc})") from exc

    def _json(self, line: str, number: int) -> dict[str, Any]:
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AuditFormatError(f"{self.path}, line {number}: not JSON ({exc.msg})") from exc
        if not isinstance(value, dict):
            raise AuditFormatError(f"{self.path}, line {number}: not a JSON object")
        return value

    def _lines(self, kind: str) -> Iterator[tuple[int, dict[str, Any]]]:
        with self.path.open(encoding="utf-8") as f:
            f.readline()
            for number, line in enumerate(f, start=2):
                if not line.strip():
                    continue
                value = self._json(line, number)
                if value.get("type") not in ("entry", "checkpoint"):
                    raise AuditFormatError(f"{self.path}, line {number}: unknown type")
                if value["type"] == kind:
                    yield number, value

    def head(self) -> ChainHead:
        return self._head

    def _entries(self) -> Iterator[ChainedEntry]:
        for number, v in self._lines("entry"):
            try:
                yield ChainedEntry(
                    id=int(v["id"]),
                    seq=None if v["seq"] is None else int(v["seq"]),
                    at=str(v["at"]),
                    actor=str(v["actor"]),
                    action=str(v["action"]),
                    order_id=None if v["order_id"] is None else int(v["order_id"]),
                    card_serial=v["card_serial"],
                    detail=v["detail"],
                    entry_hash=None if v["hash"] is None else bytes.fromhex(v["hash"]),
                )
            except (KeyError, ValueError, TypeError) as exc:
                raise AuditFormatError(f"{self.path}, line {number}: bad entry ({exc})") from exc

    def entries(self) -> Iterator[ChainedEntry]:
        return (e for e in self._entries() if e.seq is not None)

    def unchained(self) -> list[ChainedEntry]:
        return [e for e in self._entries() if e.seq is None][:10]

    def checkpoints(self) -> list[Checkpoint]:
        out: list[Checkpoint] = []
        for number, v in self._lines("checkpoint"):
            try:
                out.append(
                    Checkpoint(
                        int(v["seq"]),
                        bytes.fromhex(v["hash"]),
                        str(v["signed_at"]),
                        str(v["key_id"]),
                        bytes.fromhex(v["signature"]),
                    )
                )
            except (KeyError, ValueError, TypeError) as exc:
                raise AuditFormatError(
                    f"{self.path}, line {number}: bad checkpoint ({exc})"
                ) from exc
        return sorted(out, key=lambda c: c.seq)


# -- verification ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditVerification:
    """The outcome of `verify_log`. `problem` is None when the log is intact."""

    entries: int
    checkpoints: int
    last_checkpoint_seq: int
    unprotected_tail: int  # entries after the last valid checkpoint (chain only, no signature)
    problem: str | None = None
    first_bad_seq: int | None = None
    first_bad_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _checkpoint_valid(
    cp: Checkpoint, chain_id: bytes, public_key: ec.EllipticCurvePublicKey
) -> bool:
    message = checkpoint_message(chain_id, cp.seq, cp.entry_hash, cp.signed_at)
    try:
        public_key.verify(cp.signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def verify_log(
    source: AuditSource,
    public_key: ec.EllipticCurvePublicKey,
    progress: Callable[[int], None] | None = None,
) -> AuditVerification:
    """Check every entry's hash and place, every checkpoint's signature, and that the chain
    reaches every checkpoint and the head. Stops at the first problem and names it."""
    head = source.head()
    checkpoints = source.checkpoints()
    counts: dict[str, int] = {"entries": 0, "checkpoints": len(checkpoints)}

    def bad(problem: str, seq: int | None, entry_id: int | None, good_cp: int) -> AuditVerification:
        return AuditVerification(
            counts["entries"], len(checkpoints), good_cp, 0, problem, seq, entry_id
        )

    for cp in checkpoints:
        if not _checkpoint_valid(cp, head.chain_id, public_key):
            return bad(
                f"checkpoint at entry {cp.seq} does not carry a valid signature of the audit key",
                cp.seq,
                None,
                0,
            )
    pending = list(checkpoints)
    last_good_cp = 0
    previous = genesis_hash(head.chain_id)
    expected = 1
    for entry in source.entries():
        seq = entry.seq
        assert seq is not None
        if seq != expected:
            what = (
                f"entry {expected} is missing (next is entry {seq}, id {entry.id})"
                if seq > expected
                else f"entry {seq} (id {entry.id}) appears twice or out of order"
            )
            return bad(what, expected, entry.id, last_good_cp)
        computed = entry_hash(previous, seq, entry.fields)
        if entry.entry_hash != computed:
            return bad(
                f"entry {seq} (id {entry.id}, {entry.action}) was changed, moved or inserted:"
                " its hash does not match its content and its predecessor",
                seq,
                entry.id,
                last_good_cp,
            )
        while pending and pending[0].seq == seq:
            cp = pending.pop(0)
            if cp.entry_hash != computed:
                return bad(
                    f"entries {last_good_cp + 1}..{seq} do not match the checkpoint signed at"
                    f" entry {seq}: the log was rewritten there (its hashes recomputed);"
                    f" the first entry that may differ is {last_good_cp + 1}",
                    last_good_cp + 1,
                    None,
                    last_good_cp,
                )
            last_good_cp = seq
        previous = computed
        counts["entries"] = seq
        expected += 1
        if progress is not None and seq % _PAGE == 0:
            progress(seq)
    last = expected - 1
    if pending:
        cp = pending[0]
        return bad(
            f"the log ends at entry {last} but a checkpoint signed entry {cp.seq}:"
            f" entries {last + 1}..{cp.seq} were deleted",
            last + 1,
            None,
            last_good_cp,
        )
    if head.seq != last or (last > 0 and head.entry_hash != previous):
        return bad(
            f"the chain head names entry {head.seq} but the log ends at entry {last}"
            + (": entries were deleted from the end" if head.seq > last else ""),
            min(head.seq, last) + 1,
            None,
            last_good_cp,
        )
    stray = source.unchained()
    if stray:
        first = stray[0]
        return bad(
            f"entry id {first.id} ({first.action}) is not in the chain: it was inserted"
            " outside sealcard",
            None,
            first.id,
            last_good_cp,
        )
    return AuditVerification(last, len(checkpoints), last_good_cp, last - last_good_cp)


def load_public_key(pem: bytes) -> ec.EllipticCurvePublicKey:
    """The audit key from PEM (SubjectPublicKeyInfo, EC P-256)."""
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise IssuerError(unreadable("a public key", pem)) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise IssuerError("the audit key must be an EC P-256 public key")
    return key


def chain_existing(tx: Tx, chain_id: bytes, rows: Iterable[Sequence[Any]]) -> tuple[int, bytes]:
    """Chain rows that predate the chain (migration): (id, at, actor, action, order_id,
    card_serial, detail) in id order get seq 1.. and their hashes. Returns the new head."""
    previous = genesis_hash(chain_id)
    seq = 0
    updates: list[tuple[Any, ...]] = []
    for row in rows:
        seq += 1
        fields: EntryFields = (
            str(row[1]),
            str(row[2]),
            str(row[3]),
            None if row[4] is None else int(row[4]),
            row[5],
            row[6],
        )
        previous = entry_hash(previous, seq, fields)
        updates.append((seq, previous, int(row[0])))
    tx.executemany("UPDATE audit_log SET seq = ?, entry_hash = ? WHERE id = ?", updates)
    return seq, previous
