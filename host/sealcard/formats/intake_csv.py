"""The bank's bulk intake files: customers and card orders, CSV (RFC 4180, UTF-8, a header).

customers.csv, one customer a line (docs/api.md):

    customer_ref,name,address[,login]

`customer_ref` is the bank's customer number (unique, 1..64 printable characters); `login`
defaults to it. orders.csv, one order a line:

    customer_ref,channel,pin_source[,mailer][,count]

`channel` is `bureau` or `activation`, `pin_source` is `hsm` (the issuer HSM makes PIN and PUK
and a letter for `mailer`) or `none` (the user chooses them on the card); `count` defaults to 1.

Pure parsing: the whole file is checked before anything is added, and every bad line is
reported by its number, so a file is taken whole or not at all.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sealcard.errors import ConfigurationError

MAX_REF_LENGTH: Final = 64
MAX_TEXT_LENGTH: Final = 512
MAX_COUNT: Final = 100
MAX_REPORTED_ERRORS: Final = 20
CUSTOMER_COLUMNS: Final = ("customer_ref", "name", "address")
CUSTOMER_OPTIONAL: Final = ("login",)
ORDER_COLUMNS: Final = ("customer_ref", "channel", "pin_source")
ORDER_OPTIONAL: Final = ("mailer", "count")
CHANNELS: Final = ("bureau", "activation")
PIN_SOURCES: Final = ("hsm", "none")


class IntakeFileError(ConfigurationError):
    """The file is not a valid intake file; `problems` lists each bad line (nothing added).
    A file the caller named is wrong: the CLI exits 2, the API answers 400."""

    def __init__(self, what: str, problems: Sequence[str]) -> None:
        shown = list(problems[:MAX_REPORTED_ERRORS])
        more = len(problems) - len(shown)
        text = "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
        super().__init__(f"{what}: {text} (nothing was added)")
        self.problems = list(problems)


@dataclass(frozen=True)
class CustomerRow:
    """One customer of customers.csv."""

    line: int
    customer_ref: str
    name: str
    address: str
    login: str


@dataclass(frozen=True)
class OrderRow:
    """One line of orders.csv."""

    line: int
    customer_ref: str
    channel: str
    pin_source: str
    mailer: str | None
    count: int


def _rows(
    text: str, what: str, required: Sequence[str], optional: Sequence[str]
) -> list[tuple[int, dict[str, str]]]:
    if text.startswith("\ufeff"):
        text = text[1:]  # a byte order mark from a spreadsheet export
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise IntakeFileError(what, [f"line 1: {exc}"]) from None
    if header is None:
        raise IntakeFileError(what, ["the file is empty (expected a header line)"])
    names = [h.strip() for h in header]
    missing = [c for c in required if c not in names]
    unknown = [c for c in names if c not in (*required, *optional)]
    if missing or unknown or len(set(names)) != len(names):
        expected = ",".join(required) + "".join(f"[,{o}]" for o in optional)
        raise IntakeFileError(
            what,
            [f"line 1: the header is {','.join(names)!r}, expected {expected!r}"],
        )
    reader.fieldnames = names
    out: list[tuple[int, dict[str, str]]] = []
    problems: list[str] = []
    try:
        for row in reader:
            line = reader.line_num
            if None in row or any(v is None for v in row.values()):
                problems.append(f"line {line}: expected {len(names)} fields")
                continue
            out.append((line, {k: v.strip() for k, v in row.items() if k is not None}))
    except csv.Error as exc:
        problems.append(f"line {reader.line_num}: {exc}")
    if problems:
        raise IntakeFileError(what, problems)
    return out


def _text_ok(value: str, limit: int) -> bool:
    return 0 < len(value) <= limit and value.isprintable()


def parse_customers(text: str) -> list[CustomerRow]:
    """Every customer of a customers.csv, or IntakeFileError naming each bad line."""
    rows = _rows(text, "customers file", CUSTOMER_COLUMNS, CUSTOMER_OPTIONAL)
    problems: list[str] = []
    out: list[CustomerRow] = []
    refs: dict[str, int] = {}
    logins: dict[str, int] = {}
    for line, row in rows:
        ref, login = row["customer_ref"], row.get("login") or row["customer_ref"]
        if not _text_ok(ref, MAX_REF_LENGTH) or " " in ref:
            problems.append(f"line {line}: customer_ref must be 1-64 characters without spaces")
            continue
        if not _text_ok(row["name"], MAX_TEXT_LENGTH):
            problems.append(f"line {line}: customer {ref}: name is empty or too long")
        if not _text_ok(row["address"], MAX_TEXT_LENGTH):
            problems.append(f"line {line}: customer {ref}: address is empty or too long")
        if not _text_ok(login, MAX_REF_LENGTH) or " " in login:
            problems.append(f"line {line}: customer {ref}: login must be 1-64 characters")
        if ref in refs:
            problems.append(f"line {line}: customer {ref} is also on line {refs[ref]}")
        if login in logins:
            problems.append(f"line {line}: login {login} is also on line {logins[login]}")
        refs.setdefault(ref, line)
        logins.setdefault(login, line)
        out.append(CustomerRow(line, ref, row["name"], row["address"], login))
    if problems:
        raise IntakeFileError("customers file", problems)
    if not out:
        raise IntakeFileError("customers file", ["no customer after the header"])
    return out


def parse_orders(text: str) -> list[OrderRow]:
    """Every order line of an orders.csv, or IntakeFileError naming each bad line."""
    rows = _rows(text, "orders file", ORDER_COLUMNS, ORDER_OPTIONAL)
    problems: list[str] = []
    out: list[OrderRow] = []
    for line, row in rows:
        ref, channel, pin_source = row["customer_ref"], row["channel"], row["pin_source"]
        mailer = row.get("mailer") or None
        count_text = row.get("count") or "1"
        if not _text_ok(ref, MAX_REF_LENGTH):
            problems.append(f"line {line}: customer_ref is empty or too long")
        if channel not in CHANNELS:
            problems.append(f"line {line}: channel {channel!r} is not one of bureau, activation")
        if pin_source not in PIN_SOURCES:
            problems.append(f"line {line}: pin_source {pin_source!r} is not one of hsm, none")
        if pin_source == "hsm" and mailer is None:
            problems.append(f"line {line}: pin_source hsm needs a mailer for the PIN letter")
        if not count_text.isdigit() or not 1 <= int(count_text) <= MAX_COUNT:
            problems.append(f"line {line}: count must be 1 to {MAX_COUNT}")
            continue
        out.append(OrderRow(line, ref, channel, pin_source, mailer, int(count_text)))
    if problems:
        raise IntakeFileError("orders file", problems)
    if not out:
        raise IntakeFileError("orders file", ["no order after the header"])
    return out
