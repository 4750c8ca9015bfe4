"""`sealcard issuer audit`: verify, export and checkpoint the tamper-evident audit log.

Registered on the `issuer` group by issuer_cmd. docs/audit.md describes the chain, the
checkpoints, the export format and what it does and does not protect against.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from sealcard.cli.issuer_common import home_option, issuer_emit, issuer_json_option, open_records
from sealcard.cli.outcome import CliFail
from sealcard.issuer.audit import AuditVerification
from sealcard.issuer.config import load_home


@click.group(name="audit")
def audit_group() -> None:
    """The audit log: hash-chained entries, checkpoints signed in the issuer-system HSM.

    \b
      sealcard issuer audit checkpoint          # sign the log as it is now (run it often)
      sealcard issuer audit verify              # check every entry and checkpoint
      sealcard issuer audit export --out log.jsonl
      sealcard issuer audit verify --file log.jsonl --key audit-key.pem   # an auditor, no DB

    verify exits 0 when the log is intact and 1 (one line naming the first bad entry)
    when an entry was changed, deleted, moved or inserted.
    """


def _default_key(home: Path | None) -> Path:
    from sealcard.hsm.setup import audit_key_path

    return audit_key_path(load_home(home).root)


@audit_group.command(name="verify")
@home_option
@click.option(
    "--file",
    "export_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Verify this export (from `issuer audit export`) instead of the database.",
)
@click.option(
    "--key",
    "key_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The audit key's public half (PEM) you trust [default: hsm/audit-key.pem in the "
    "home]. An auditor passes the key recorded when the HSM was set up.",
)
@issuer_json_option
def verify_cmd(
    home: Path | None, export_file: Path | None, key_file: Path | None, as_json: bool
) -> None:
    """Check the whole audit log: each entry's hash chain, each checkpoint's signature.

    Exit 0: intact. Exit 1: one line naming the first entry that was changed, deleted,
    moved or inserted (or the checkpoint that fails).
    """
    from sealcard.errors import ConfigurationError
    from sealcard.parties import issuer_audit

    key_path = key_file or _default_key(home)
    if key_file is None and not key_path.exists():
        raise ConfigurationError(
            f"no audit key at {key_path}: pass --key, or run `sealcard issuer audit checkpoint`"
            " once to create it in the issuer-system HSM"
        )
    key = issuer_audit.load_key(key_path)
    with _progress(as_json) as progress:
        if export_file is not None:
            result = issuer_audit.verify_export(export_file, key, progress)
            where = str(export_file)
        else:
            _, records = open_records(home)
            with records.db:
                result = issuer_audit.verify_records(records, key, progress)
            where = "database"
    payload = _payload(result, where)
    if not result.ok:
        assert result.problem is not None
        raise CliFail(
            f"audit log ({where}): {result.problem}", kind="AuditLogTampered", payload=payload
        )
    tail = (
        f"; {result.unprotected_tail} entries after the last checkpoint (chained, not yet signed)"
        if result.unprotected_tail
        else ""
    )
    text = (
        f"audit log ({where}) intact: {result.entries} entries, {result.checkpoints}"
        f" checkpoint(s), last at entry {result.last_checkpoint_seq}{tail}"
    )
    issuer_emit(as_json, payload, text)


@contextmanager
def _progress(as_json: bool) -> Iterator[Callable[[int], None] | None]:
    """A running count of the entries checked, on a terminal's stderr (not with --json, not
    into a pipe: there a failure stays one line)."""
    if as_json or not sys.stderr.isatty():
        yield None
        return
    shown = False

    def show(done: int) -> None:
        nonlocal shown
        shown = True
        click.echo(f"\rchecked {done} entries", nl=False, err=True)

    try:
        yield show
    finally:
        if shown:
            click.echo("", err=True)


def _payload(result: AuditVerification, where: str) -> dict[str, Any]:
    return {
        "source": where,
        "intact": result.ok,
        "entries": result.entries,
        "checkpoints": result.checkpoints,
        "last_checkpoint_seq": result.last_checkpoint_seq,
        "unprotected_tail": result.unprotected_tail,
        "first_bad_seq": result.first_bad_seq,
        "first_bad_id": result.first_bad_id,
    }


@audit_group.command(name="export")
@home_option
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The export file to write (JSON Lines; never overwritten).",
)
@issuer_json_option
def export_cmd(home: Path | None, out_file: Path, as_json: bool) -> None:
    """Write the whole audit log with its checkpoints to a file (docs/audit.md, "Export").

    The file verifies on its own: `sealcard issuer audit verify --file FILE --key KEY`.
    """
    from sealcard.parties import issuer_audit

    _, records = open_records(home)
    with records.db:
        entries, checkpoints = issuer_audit.export(records, out_file)
    issuer_emit(
        as_json,
        {"file": str(out_file), "entries": entries, "checkpoints": checkpoints},
        f"wrote {entries} entries and {checkpoints} checkpoint(s) to {out_file}",
    )


@audit_group.command(name="checkpoint")
@home_option
@issuer_json_option
def checkpoint_cmd(home: Path | None, as_json: bool) -> None:
    """Sign the log's current last entry with the audit key in the issuer-system HSM.

    Entries after the last checkpoint are protected by the chain alone (anyone who can write
    the database could cut them off): run this often, e.g. from a timer. `issuer seal` and
    `issuer card reset-pin/terminate` sign one at their end by themselves. Creates the audit
    key on first use for older homes.
    """
    from sealcard.hsm.config import load_settings
    from sealcard.hsm.setup import audit_key_path, write_audit_key_pem
    from sealcard.hsm.system_hsm import AuditKey
    from sealcard.hsm.token import Token
    from sealcard.parties import issuer_audit

    issuer_home, records = open_records(home)
    settings = load_settings(issuer_home.root, issuer_home.raw_config())
    with records.db:
        token = Token.open(settings.system, pool_size=1)
        try:
            key = AuditKey(token)
            if key.ensure_key() or not audit_key_path(issuer_home.root).exists():
                write_audit_key_pem(issuer_home.root, key)
            cp = issuer_audit.checkpoint(records, key)
        finally:
            token.close()
    if cp is None:
        issuer_emit(
            as_json, {"signed": False}, "nothing new to sign: the last entry has a checkpoint"
        )
        return
    issuer_emit(
        as_json,
        {"signed": True, "seq": cp.seq, "key_id": cp.key_id, "signed_at": cp.signed_at},
        f"checkpoint signed at entry {cp.seq} (audit key {cp.key_id[:16]}...)",
    )
