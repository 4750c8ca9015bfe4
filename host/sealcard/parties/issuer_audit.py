"""The issuer's audit log as a use case: sign a checkpoint, verify the log or an export of it,
export it (docs/audit.md). The CLI, and later the operator console, call these.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import ec

from sealcard.errors import ConfigurationError
from sealcard.files import check_new_file
from sealcard.hsm.system_hsm import AuditKey
from sealcard.hsm.token import Token
from sealcard.issuer import audit
from sealcard.issuer.audit import AuditVerification, Checkpoint
from sealcard.issuer.errors import IssuerError
from sealcard.issuer.records import Records


class CheckpointSigner(Protocol):
    """What the issuer-system HSM offers here (`sealcard.hsm.system_hsm.AuditKey`)."""

    def sign(self, data: bytes) -> bytes: ...

    def public_key(self) -> ec.EllipticCurvePublicKey: ...


def checkpoint(records: Records, signer: CheckpointSigner) -> Checkpoint | None:
    """Sign the chain as it is now (its last entry); None when that entry is signed already.

    Entries appended while the HSM signs are simply left for the next checkpoint.
    """
    with records.db.transaction() as tx:
        head = audit.read_head(tx)
        if head.seq == 0 or audit.last_checkpoint_seq(tx) >= head.seq:
            return None
    signed_at = datetime.now(UTC).isoformat(timespec="microseconds")
    message = audit.checkpoint_message(head.chain_id, head.seq, head.entry_hash, signed_at)
    cp = Checkpoint(
        head.seq,
        head.entry_hash,
        signed_at,
        audit.key_id(signer.public_key()),
        signer.sign(message),
    )
    with records.db.transaction() as tx:
        stored = audit.add_checkpoint(tx, cp)
    return cp if stored else None


def checkpoint_in_token(records: Records, token: Token) -> Checkpoint | None:
    """`checkpoint` with the audit key of an open issuer-system token, at the end of a command
    that wrote to the log; None also when the token has no audit key yet (a home made before
    it: `sealcard issuer audit checkpoint` creates it)."""
    key = AuditKey(token)
    if not token.has_object(key.label):
        return None
    return checkpoint(records, key)


def verify_records(
    records: Records,
    public_key: ec.EllipticCurvePublicKey,
    progress: Callable[[int], None] | None = None,
) -> AuditVerification:
    """Verify the whole audit log in the database."""
    return audit.verify_log(audit.DatabaseSource(records.db), public_key, progress)


def verify_export(
    path: Path,
    public_key: ec.EllipticCurvePublicKey,
    progress: Callable[[int], None] | None = None,
) -> AuditVerification:
    """Verify an export file (`export`), with no database at hand."""
    return audit.verify_log(audit.ExportSource(path), public_key, progress)


def export(records: Records, path: Path) -> tuple[int, int]:
    """Write the log to `path` (JSON Lines, docs/audit.md), atomically (temp file, rename).

    Returns (entries, checkpoints). An existing file is not overwritten.
    """
    check_new_file(
        path, what="the export", fix="give a new file (an export is never overwritten)",
        overwrite=False,
    )  # fmt: skip
    exported_at = datetime.now(UTC).isoformat(timespec="microseconds")
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("w", encoding="utf-8") as out:
            counts = audit.write_export(audit.DatabaseSource(records.db), out, exported_at)
            out.flush()
            os.fsync(out.fileno())
        os.link(partial, path)  # fails rather than replace a file that appeared meanwhile
    except FileExistsError as exc:
        raise ConfigurationError(f"{exc.filename} exists: give a new file") from exc
    except OSError as exc:
        raise ConfigurationError(f"cannot write {path}: {exc.strerror}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return counts


def load_key(path: Path) -> ec.EllipticCurvePublicKey:
    """The audit key's public half from a PEM file (a file the caller named: a
    ConfigurationError when it cannot be read or holds no such key)."""
    try:
        return audit.load_public_key(path.read_bytes())
    except OSError as exc:
        raise ConfigurationError(f"cannot read the audit key {path}: {exc.strerror}") from exc
    except IssuerError as exc:
        raise ConfigurationError(
            f"the audit key {path}: {exc}; give the audit key's public half (PEM), as "
            "`issuer hsm init` wrote it to HOME/hsm/audit-key.pem"
        ) from None
