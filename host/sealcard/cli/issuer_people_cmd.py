"""`sealcard issuer user import`, `issuer operator add/list`: customers in bulk and the bank
staff's accounts of the HTTPS API and console.

Registered on the `issuer` group by issuer_cmd. The work is done by
`sealcard.parties.issuer` (the same use cases the API calls).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sealcard.cli.common import fd_option, read_secret, read_text_file
from sealcard.cli.issuer_common import home_option, issuer_emit, issuer_json_option
from sealcard.issuer.config import load_home


@click.command(name="import")
@click.option(
    "--file",
    "csv_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The customers, a CSV (UTF-8) with the header customer_ref,name,address[,login].",
)
@click.option(
    "--credentials-out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="New file (mode 0600, never overwritten) for each customer's first login and "
    "password: customer_ref,login,password. Hand it to whoever sends customers their "
    "credentials, then delete it.",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 64),
    default=None,
    help="Threads hashing the passwords (Argon2id) [default: one per core].",
)
@home_option
@issuer_json_option
def user_import(
    csv_file: Path, credentials_out: Path, threads: int | None, home: Path | None, as_json: bool
) -> None:
    """Add every customer of a CSV file, each with an account for the HTTPS API.

    \b
    --file (UTF-8, header line):  customer_ref,name,address[,login]
    customer_ref is the bank's customer number; login defaults to it.

    The whole file is checked first and taken whole or not at all (a customer number or
    login seen before refuses it). Each account gets a generated password (130 bits),
    written only to --credentials-out.
    """
    from sealcard.formats.intake_csv import parse_customers
    from sealcard.parties.issuer.home import open_issuer
    from sealcard.parties.issuer.intake import (
        check_credentials_path,
        import_customers,
        write_credentials,
    )

    check_credentials_path(credentials_out)
    rows = parse_customers(read_text_file(csv_file))
    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if as_json:
            return
        if bar is None:
            bar = click.progressbar(length=total, label="hashing credentials", file=None)
            bar.__enter__()
        bar.update(done - bar.pos)

    try:
        with open_issuer(None if home is None else home) as ctx:
            intake = import_customers(ctx, rows, threads=threads, progress=progress)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    write_credentials(credentials_out, intake.credentials)
    issuer_emit(
        as_json,
        {"customers": intake.users, "credentials_file": str(credentials_out)},
        f"{intake.users} customer(s) added; first credentials in {credentials_out} (mode 0600)",
    )


@click.group(name="operator")
def operator_group() -> None:
    """Bank staff accounts of the HTTPS API and console (roles: operator, auditor).

    Operators take in customers and orders, mark cards lost, order replacements, cancel
    orders and approve PIN resets; auditors read everything and change nothing. Every action
    is in the audit log under the account's name.
    """


@operator_group.command(name="add")
@click.option("--login", required=True, help="The staff member's login name.")
@click.option(
    "--role", type=click.Choice(["operator", "auditor"]), required=True, help="What they may do."
)
@fd_option(
    "--password-fd",
    "Read the password from file descriptor N instead of a hidden prompt (typed twice).",
)
@home_option
@issuer_json_option
def operator_add(
    login: str, role: str, password_fd: int | None, home: Path | None, as_json: bool
) -> None:
    """Add a staff account; the password (12+ characters) from a prompt or --password-fd."""
    from sealcard.issuer.accounts import Role
    from sealcard.parties.issuer.access import add_staff
    from sealcard.parties.issuer.home import open_issuer

    load_home(home)  # no issuer home: say so before anyone types a password
    password = read_secret(password_fd, "new staff password", option="--password-fd", confirm=True)
    password_text = password.decode("utf-8", "replace")
    with open_issuer(home) as ctx:
        account = add_staff(ctx, login, Role(role), password_text)
    issuer_emit(
        as_json,
        {"account": {"id": account.id, "login": account.login, "role": account.role.value}},
        f"{account.role.value} {account.login} added",
    )


@operator_group.command(name="list")
@home_option
@issuer_json_option
def operator_list(home: Path | None, as_json: bool) -> None:
    """Staff accounts and their roles."""
    from sealcard.parties.issuer.home import open_issuer

    with open_issuer(home) as ctx:
        staff = ctx.accounts.staff()
    rows = [
        {"id": a.id, "login": a.login, "role": a.role.value, "disabled": a.disabled} for a in staff
    ]
    text = "\n".join(f"{a.login:24} {a.role.value}" for a in staff) or "no staff accounts"
    issuer_emit(as_json, {"accounts": rows}, text)
