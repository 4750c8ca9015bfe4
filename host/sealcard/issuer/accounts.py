"""Accounts of the issuer's HTTPS API and console: logins, sessions, sign-in failures and
single-use challenges, in the same database as the records (schema 3).

Nothing secret is stored: passwords only as Argon2id hashes (`sealcard.crypto.passwords`),
session tokens only as SHA-256 hashes (a stolen database opens no session), challenges are
public random values used once. Policy (how long a session lives, how many failures lock a
login) belongs to `sealcard.parties.issuer`; this module only stores and counts.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sealcard.issuer.db import Tx
from sealcard.issuer.errors import DuplicateRecordError, IssuerError, RecordNotFoundError
from sealcard.issuer.records import Records, now


class Role(enum.StrEnum):
    """What an account may do (enforced by `sealcard.parties.issuer`, never by the client)."""

    CUSTOMER = "customer"  # their own cards: activation, loss, issuer commands via their computer
    OPERATOR = "operator"  # bank staff: intake, orders, loss, replacement, PIN reset approval
    AUDITOR = "auditor"  # bank staff, read only: every page of the console, the audit log


STAFF_ROLES = (Role.OPERATOR, Role.AUDITOR)


@dataclass(frozen=True)
class Account:
    """A login (no secret in it)."""

    id: int
    login: str
    role: Role
    user_id: int | None
    disabled: bool
    created_at: str

    @property
    def actor(self) -> str:
        """The name this account's actions carry in the audit log."""
        return f"{self.role.value}:{self.login}"


@dataclass(frozen=True)
class Challenge:
    """A single-use issuer challenge (activation, issuer commands)."""

    id: str
    account_id: int
    purpose: str
    challenge: bytes
    card_serial: bytes | None
    detail: dict[str, Any] | None
    expires_at: str


_ACCOUNT_COLS = "id, login, role, user_id, disabled, created_at"


def _account(row: Sequence[Any]) -> Account:
    return Account(
        int(row[0]),
        str(row[1]),
        Role(row[2]),
        None if row[3] is None else int(row[3]),
        bool(row[4]),
        str(row[5]),
    )


def check_login(login: str) -> str:
    """A login name: 1..64 printable characters without spaces (returned stripped)."""
    login = login.strip()
    if not 1 <= len(login) <= 64 or not login.isprintable() or " " in login:
        raise IssuerError("a login is 1 to 64 printable characters without spaces")
    return login


class Accounts:
    """The account tables, over the records' database and audit log."""

    def __init__(self, records: Records) -> None:
        self.records = records
        self.db = records.db

    # -- accounts ---------------------------------------------------------------------------

    def create(
        self, login: str, role: Role, password_hash: str, user_id: int | None = None
    ) -> Account:
        """One account (a customer's needs its user, staff accounts have none)."""
        if (role is Role.CUSTOMER) != (user_id is not None):
            raise IssuerError("a customer account belongs to one user; staff accounts to none")
        login = check_login(login)
        at = now()
        with self.db.transaction() as tx:
            if tx.scalar("SELECT id FROM accounts WHERE login = ?", (login,)) is not None:
                raise DuplicateRecordError(f"the login {login!r} is taken")
            account_id = int(
                tx.scalar(
                    "INSERT INTO accounts (login, role, user_id, password_hash, created_at,"
                    " password_changed_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                    (login, role.value, user_id, password_hash, at, at),
                )
            )
            self.records.audit_in(
                tx, "account.create", detail={"account_id": account_id, "role": role.value}
            )
        return Account(account_id, login, role, user_id, False, at)

    def create_customers(self, tx: Tx, rows: Sequence[tuple[str, int, str]]) -> None:
        """Customer accounts in bulk (login, user id, password hash), inside the caller's
        transaction (the intake's, so users and accounts commit together)."""
        at = now()
        tx.executemany(
            "INSERT INTO accounts (login, role, user_id, password_hash, created_at,"
            " password_changed_at) VALUES (?, 'customer', ?, ?, ?, ?)",
            [(login, user_id, h, at, at) for login, user_id, h in rows],
        )

    def taken_logins(self, tx: Tx, logins: Sequence[str]) -> list[str]:
        """Which of these logins exist already."""
        taken: list[str] = []
        for i in range(0, len(logins), 500):
            part = list(logins[i : i + 500])
            marks = ", ".join("?" * len(part))
            taken += [
                str(r[0])
                for r in tx.all(f"SELECT login FROM accounts WHERE login IN ({marks})", part)  # noqa: S608
            ]
        return taken

    def by_login(self, login: str) -> tuple[Account, str] | None:
        """The account and its password hash, or None."""
        with self.db.transaction() as tx:
            row = tx.one(
                f"SELECT {_ACCOUNT_COLS}, password_hash FROM accounts WHERE login = ?",  # noqa: S608
                (login,),
            )
        return None if row is None else (_account(row), str(row[6]))

    def get(self, account_id: int) -> Account:
        with self.db.transaction() as tx:
            row = tx.one(f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE id = ?", (account_id,))  # noqa: S608
        if row is None:
            raise RecordNotFoundError(f"no account {account_id}")
        return _account(row)

    def of_user(self, user_id: int) -> Account | None:
        with self.db.transaction() as tx:
            row = tx.one(f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE user_id = ?", (user_id,))  # noqa: S608
        return None if row is None else _account(row)

    def staff(self) -> list[Account]:
        with self.db.transaction() as tx:
            rows = tx.all(
                f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE role <> 'customer' ORDER BY id"  # noqa: S608
            )
        return [_account(r) for r in rows]

    def set_password(self, account_id: int, password_hash: str) -> None:
        """Replace an account's password hash and end its sessions."""
        at = now()
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE accounts SET password_hash = ?, password_changed_at = ? WHERE id = ?",
                (password_hash, at, account_id),
            )
            if tx.rowcount != 1:
                raise RecordNotFoundError(f"no account {account_id}")
            tx.execute(
                "UPDATE sessions SET ended_at = ? WHERE account_id = ? AND ended_at IS NULL",
                (at, account_id),
            )
            self.records.audit_in(tx, "account.password", detail={"account_id": account_id})

    # -- sign-in failures -------------------------------------------------------------------

    def record_failure(self, subjects: Sequence[tuple[str, str]], at: str) -> None:
        """One failed sign-in at `at`, counted under each (scope, subject): the login, the
        address."""
        with self.db.transaction() as tx:
            tx.executemany(
                "INSERT INTO signin_failures (scope, subject, at) VALUES (?, ?, ?)",
                [(scope, subject, at) for scope, subject in subjects],
            )

    def failures_since(self, scope: str, subject: str, since: str) -> tuple[int, str | None]:
        """(failures of `subject` since `since`, the oldest of them) for a rate limit."""
        with self.db.transaction() as tx:
            row = tx.one(
                "SELECT COUNT(*), MIN(at) FROM signin_failures"
                " WHERE scope = ? AND subject = ? AND at > ?",
                (scope, subject, since),
            )
        assert row is not None
        return int(row[0]), None if row[1] is None else str(row[1])

    def forget_failures(self, scope: str, subject: str) -> None:
        """After a good sign-in the login's count starts again (the address's does not)."""
        with self.db.transaction() as tx:
            tx.execute(
                "DELETE FROM signin_failures WHERE scope = ? AND subject = ?", (scope, subject)
            )

    def prune_failures(self, before: str) -> int:
        """Drop failures older than any window looks at."""
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM signin_failures WHERE at < ?", (before,))
            return tx.rowcount

    # -- sessions ---------------------------------------------------------------------------

    def start_session(self, account_id: int, token_hash: str, expires_at: str) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO sessions (token_hash, account_id, created_at, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (token_hash, account_id, now(), expires_at),
            )

    def session_account(self, token_hash: str, at: str) -> tuple[Account, str] | None:
        """The account of a live session (not ended, not expired, account enabled) and the
        session's expiry; None otherwise."""
        with self.db.transaction() as tx:
            row = tx.one(
                f"SELECT {', '.join('a.' + c for c in _ACCOUNT_COLS.split(', '))}, s.expires_at"  # noqa: S608
                " FROM sessions s JOIN accounts a ON a.id = s.account_id"
                " WHERE s.token_hash = ? AND s.ended_at IS NULL AND s.expires_at > ?"
                " AND a.disabled = 0",
                (token_hash, at),
            )
        return None if row is None else (_account(row), str(row[6]))

    def end_session(self, token_hash: str) -> bool:
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE sessions SET ended_at = ? WHERE token_hash = ? AND ended_at IS NULL",
                (now(), token_hash),
            )
            return tx.rowcount == 1

    # -- challenges -------------------------------------------------------------------------

    def new_challenge(self, challenge: Challenge) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO challenges (id, account_id, purpose, challenge, card_serial, detail,"
                " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    challenge.id,
                    challenge.account_id,
                    challenge.purpose,
                    challenge.challenge,
                    None if challenge.card_serial is None else challenge.card_serial.hex(),
                    None if challenge.detail is None else json.dumps(challenge.detail),
                    now(),
                    challenge.expires_at,
                ),
            )

    def take_challenge(
        self, challenge_id: str, account_id: int, purpose: str, at: str
    ) -> Challenge | None:
        """Use a challenge once: None if it is unknown, someone else's, for another purpose,
        expired or used before (a replay)."""
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE challenges SET used_at = ? WHERE id = ? AND account_id = ? AND purpose = ?"
                " AND used_at IS NULL AND expires_at > ?",
                (at, challenge_id, account_id, purpose, at),
            )
            if tx.rowcount != 1:
                return None
            row = tx.one(
                "SELECT id, account_id, purpose, challenge, card_serial, detail, expires_at"
                " FROM challenges WHERE id = ?",
                (challenge_id,),
            )
        assert row is not None
        return Challenge(
            str(row[0]),
            int(row[1]),
            str(row[2]),
            bytes(row[3]),
            None if row[4] is None else bytes.fromhex(row[4]),
            None if row[5] is None else json.loads(row[5]),
            str(row[6]),
        )

    def take_grant(self, account_id: int, purpose: str, card_serial: bytes, at: str) -> bool:
        """Use the oldest live grant of `purpose` for this account and card (an operator's
        approval, kept as a challenge row); False if there is none."""
        with self.db.transaction() as tx:
            row = tx.one(
                "SELECT id FROM challenges WHERE account_id = ? AND purpose = ?"
                " AND card_serial = ? AND used_at IS NULL AND expires_at > ? ORDER BY created_at"
                " LIMIT 1",
                (account_id, purpose, card_serial.hex(), at),
            )
            if row is None:
                return False
            tx.execute(
                "UPDATE challenges SET used_at = ? WHERE id = ? AND used_at IS NULL", (at, row[0])
            )
            return tx.rowcount == 1
