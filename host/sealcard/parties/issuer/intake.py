"""Bulk intake: customers with their API credentials, and card orders, from the bank's files.

A file is taken whole or not at all: it is parsed and checked first (every bad line named),
then the credentials are hashed (Argon2id, the generated-secret profile, on all cores), then
users and accounts are written in one transaction. 10,000 customers take seconds
(bench/api_intake.py).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sealcard.crypto.passwords import GENERATED, generate_password, hash_password
from sealcard.errors import ConfigurationError
from sealcard.formats.intake_csv import CustomerRow, OrderRow, parse_customers, parse_orders
from sealcard.issuer.accounts import Accounts
from sealcard.issuer.errors import DuplicateRecordError
from sealcard.parties.issuer.context import ConflictError, IssuerContext, NotFoundError

#: Called with (customers hashed so far, customers in the file).
Progress = Callable[[int, int], None]
_HASH_CHUNK = 256


@dataclass(frozen=True)
class Credential:
    """One customer's first credentials, to hand over (once) to the customer. Secret."""

    customer_ref: str
    user_id: int
    login: str
    password: str

    def __repr__(self) -> str:  # never print the password by accident
        return f"Credential({self.customer_ref!r}, {self.user_id}, {self.login!r}, ***)"


@dataclass(frozen=True)
class CustomerIntake:
    """What a customer import added."""

    users: int
    credentials: list[Credential]


def _hash_all(passwords: Sequence[str], threads: int, progress: Progress | None) -> list[str]:
    """Argon2id of each password; argon2-cffi releases the GIL, so threads use every core."""
    chunks = [passwords[i : i + _HASH_CHUNK] for i in range(0, len(passwords), _HASH_CHUNK)]
    out: list[str] = []

    def work(chunk: Sequence[str]) -> list[str]:
        return [hash_password(p, GENERATED) for p in chunk]

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for part in pool.map(work, chunks):
            out.extend(part)
            if progress is not None:
                progress(len(out), len(passwords))
    return out


def import_customers(
    ctx: IssuerContext,
    rows: Sequence[CustomerRow],
    *,
    threads: int | None = None,
    progress: Progress | None = None,
) -> CustomerIntake:
    """Add customers and one customer account each, with a generated password.

    All or nothing: a customer number or login that exists already refuses the whole file
    (`ConflictError`). Returns the credentials, which exist nowhere else in clear."""
    _refuse_known(ctx, rows)  # before the hashing: a file seen before is refused at once
    passwords = [generate_password() for _ in rows]
    hashes = _hash_all(passwords, threads or os.cpu_count() or 1, progress)
    accounts = Accounts(ctx.records)
    try:
        with ctx.records.db.transaction() as tx:
            taken = accounts.taken_logins(tx, [r.login for r in rows])
            if taken:
                raise ConflictError(
                    f"{len(taken)} login(s) exist already, e.g. {sorted(taken)[0]!r}:"
                    " nothing was added"
                )
            users = ctx.records.insert_users(
                tx, [(r.customer_ref, r.name, r.address) for r in rows]
            )
            accounts.create_customers(
                tx, [(r.login, u.id, h) for r, u, h in zip(rows, users, hashes, strict=True)]
            )
            ctx.records.audit_in(tx, "intake.customers", detail={"customers": len(users)})
    except DuplicateRecordError as exc:
        raise ConflictError(str(exc)) from exc
    credentials = [
        Credential(r.customer_ref, u.id, r.login, p)
        for r, u, p in zip(rows, users, passwords, strict=True)
    ]
    return CustomerIntake(len(users), credentials)


def _refuse_known(ctx: IssuerContext, rows: Sequence[CustomerRow]) -> None:
    known = ctx.records.users_by_ref([r.customer_ref for r in rows])
    if known:
        raise ConflictError(
            f"{len(known)} customer number(s) exist already, e.g. {sorted(known)[0]!r}:"
            " nothing was added"
        )
    with ctx.records.db.transaction() as tx:
        taken = Accounts(ctx.records).taken_logins(tx, [r.login for r in rows])
    if taken:
        raise ConflictError(
            f"{len(taken)} login(s) exist already, e.g. {sorted(taken)[0]!r}: nothing was added"
        )


def import_customers_csv(
    ctx: IssuerContext, text: str, *, threads: int | None = None, progress: Progress | None = None
) -> CustomerIntake:
    """`import_customers` of a customers.csv (`sealcard.formats.intake_csv`)."""
    return import_customers(ctx, parse_customers(text), threads=threads, progress=progress)


@dataclass(frozen=True)
class OrderIntake:
    """What an order import added."""

    orders: list[int]


def import_orders(ctx: IssuerContext, rows: Sequence[OrderRow]) -> OrderIntake:
    """Add the orders of an orders file in one transaction (all or none; an unknown
    customer number or mailer refuses the file, naming the line)."""
    refs = sorted({r.customer_ref for r in rows})
    user_ids = ctx.records.users_by_ref(refs)
    unknown = [r for r in rows if r.customer_ref not in user_ids]
    if unknown:
        first = unknown[0]
        raise NotFoundError(
            f"{len(unknown)} line(s) name an unknown customer, e.g. line {first.line}:"
            f" {first.customer_ref!r}: nothing was added"
        )
    mailers = set(ctx.records.mailers())
    no_mailer = [r for r in rows if r.mailer is not None and r.mailer not in mailers]
    if no_mailer:
        first = no_mailer[0]
        raise NotFoundError(
            f"{len(no_mailer)} line(s) name a mailer the records do not know, e.g. line"
            f" {first.line}: {first.mailer!r} (register it: `sealcard issuer hsm mailer add`):"
            " nothing was added"
        )
    wanted = [
        (user_ids[r.customer_ref], r.pin_source, r.mailer, r.channel)
        for r in rows
        for _ in range(r.count)
    ]
    orders = ctx.records.add_orders(wanted)
    return OrderIntake([o.id for o in orders])


def import_orders_csv(ctx: IssuerContext, text: str) -> OrderIntake:
    """`import_orders` of an orders.csv."""
    return import_orders(ctx, parse_orders(text))


def check_credentials_path(path: Path) -> None:
    """Before any work: the credentials file must be new and its folder writable."""
    if path.exists() or path.is_symlink():
        raise ConfigurationError(f"{path} exists: credentials are never written over a file")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigurationError(f"the folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigurationError(f"the folder {parent} is not writable")


def write_credentials(path: Path, credentials: Sequence[Credential]) -> None:
    """The first credentials as CSV (customer_ref,login,password) in a new file of mode 0600
    (created exclusively: no temporary copy, never over another file). Hand it to whoever
    sends customers their credentials, then delete it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(("customer_ref", "login", "password"))
            for c in credentials:
                writer.writerow((c.customer_ref, c.login, c.password))
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
