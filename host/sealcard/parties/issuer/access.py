"""Who may do what: staff accounts, sign-in (rate-limited per login and per address),
sessions that expire, and the role check every other use case starts with.

A session token is 32 random bytes (URL-safe base64), handed to the client once; the records
keep only its SHA-256. Wrong login and wrong password get the same refusal and take about the
same time (an unknown login is verified against a dummy hash).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass

from sealcard.crypto.passwords import (
    CHOSEN,
    PasswordPolicyError,
    check_chosen,
    hash_password,
    verify_password,
)
from sealcard.issuer.accounts import STAFF_ROLES, Account, Accounts, Role, check_login
from sealcard.issuer.errors import DuplicateRecordError, IssuerError
from sealcard.parties.issuer.context import (
    BadRequestError,
    ConflictError,
    IssuerContext,
    NotAllowedError,
    NotSignedInError,
    RateLimitedError,
    SignInRefusedError,
    stamp,
)

TOKEN_BYTES = 32
_CSRF_LABEL = b"sealcard console form"


def token_hash(token: str) -> str:
    """What the records keep of a session token."""
    return hashlib.sha256(token.encode("ascii", errors="replace")).hexdigest()


def csrf_token(session_token: str) -> str:
    """The console's form token for a session: HMAC of a fixed label under the session token
    (nothing stored; a page of another origin cannot read it, so it cannot forge a form)."""
    return hmac.new(session_token.encode(), _CSRF_LABEL, hashlib.sha256).hexdigest()


def csrf_ok(session_token: str, presented: str) -> bool:
    """Constant-time check of a form's CSRF token."""
    return hmac.compare_digest(csrf_token(session_token), presented)


@dataclass(frozen=True)
class SessionGrant:
    """A new session: the token (secret, for the client only), its account and expiry."""

    token: str
    account: Account
    expires_at: str

    def __repr__(self) -> str:
        return f"SessionGrant(account={self.account.login!r}, expires_at={self.expires_at!r})"


def require(account: Account, *roles: Role) -> Account:
    """The account, if its role is one of `roles`; else NotAllowedError."""
    if account.role not in roles:
        wanted = " or ".join(r.value for r in roles)
        raise NotAllowedError(f"this needs the {wanted} role; {account.login} is {account.role}")
    return account


def add_staff(ctx: IssuerContext, login: str, role: Role, password: str) -> Account:
    """An operator or auditor account with a password they chose (Argon2id, chosen profile)."""
    if role not in STAFF_ROLES:
        raise BadRequestError("staff accounts are operator or auditor")
    try:
        check_chosen(password)
        login = check_login(login)
    except (PasswordPolicyError, IssuerError) as exc:
        raise BadRequestError(str(exc)) from None
    try:
        return Accounts(ctx.records).create(login, role, hash_password(password, CHOSEN))
    except DuplicateRecordError as exc:
        raise ConflictError(str(exc)) from None


def _wait_for(ctx: IssuerContext, scope: str, subject: str, limit: int) -> int:
    """Seconds until `subject` may try again (0: now)."""
    window = dt.timedelta(minutes=ctx.policy.failure_window_minutes)
    now = ctx.clock()
    count, oldest = ctx.accounts.failures_since(scope, subject, stamp(now - window))
    if count < limit or oldest is None:
        return 0
    free_at = dt.datetime.fromisoformat(oldest) + window
    return max(1, math.ceil((free_at - now).total_seconds()))


def sign_in(ctx: IssuerContext, login: str, password: str, address: str) -> SessionGrant:
    """Check login and password; a session on success.

    RateLimitedError (nothing checked) when the login or the address has too many recent
    failures; SignInRefusedError for a wrong login or password (counted for both)."""
    if not login or not password or len(login) > 64 or len(password) > 256:
        raise BadRequestError("a sign-in needs a login (1-64) and a password (1-256 characters)")
    accounts = ctx.accounts
    wait = max(
        _wait_for(ctx, "account", login, ctx.policy.account_failures),
        _wait_for(ctx, "address", address, ctx.policy.address_failures),
    )
    if wait:
        raise RateLimitedError(
            f"too many failed sign-ins: try again in {wait} s", retry_after_s=wait
        )
    found = accounts.by_login(login)
    good = verify_password(None if found is None else found[1], password)
    if found is None or not good or found[0].disabled:
        accounts.record_failure([("account", login), ("address", address)], ctx.now())
        raise SignInRefusedError("wrong login or password")
    account = found[0]
    accounts.forget_failures("account", login)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    expires = stamp(ctx.clock() + dt.timedelta(minutes=ctx.policy.session_minutes))
    accounts.start_session(account.id, token_hash(token), expires)
    return SessionGrant(token, account, expires)


def session_account(ctx: IssuerContext, token: str | None) -> Account:
    """The account of a live session, or NotSignedInError."""
    if not token:
        raise NotSignedInError("sign in first")
    found = ctx.accounts.session_account(token_hash(token), ctx.now())
    if found is None:
        raise NotSignedInError("the session has expired or was ended: sign in again")
    return found[0]


def sign_out(ctx: IssuerContext, token: str) -> bool:
    """End a session (False: it was not live)."""
    return ctx.accounts.end_session(token_hash(token))


def change_password(ctx: IssuerContext, account: Account, old: str, new: str) -> None:
    """A new password of the account's choosing (ends its other sessions)."""
    found = ctx.accounts.by_login(account.login)
    if found is None or not verify_password(found[1], old):
        raise SignInRefusedError("the current password is wrong")
    try:
        check_chosen(new)
    except PasswordPolicyError as exc:
        raise BadRequestError(str(exc)) from None
    ctx.accounts.set_password(account.id, hash_password(new, CHOSEN))
