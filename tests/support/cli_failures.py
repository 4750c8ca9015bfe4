"""The failure path of every `sealcard` command, run the way a script meets it.

Each `Case` is one command line that must fail: the installed `sealcard` executable runs it
as a subprocess (PYTHONPATH pointing at this tree, stdin not a terminal) twice, as written
and with `--json`, and `check` asserts the contract of docs/cli.md:

- the exit code of the case (the same with and without --json);
- exactly one line on stderr, `error: ...`, containing `says` (no traceback);
- with --json, stdout is one JSON object with "ok": false, the same "exit_code", the
  "message" of that stderr line, and "error" equal to `error` when the case names one.

To add a row for a new command or a new failure: append a `Case` to `CASES` with the command
path (`command`), the arguments (placeholders in braces are filled by the tier's fixture:
see `NONE_PLACEHOLDERS`, `SIM_PLACEHOLDERS` and `HSM_PLACEHOLDERS`) and the tier it needs
(`needs`): "none" runs in tests/unit (no pcscd reachable, no HSM, an issuer home on SQLite),
"sim" in tests/sim on a simulated card prepared in the state `card` names, "hsm" in
tests/issuer/test_issuer_held_orders_cli.py against an issuer home whose issuer HSM service
runs (before each of a row's two runs, one after the other, an order that this HSM cannot
seal is added). `test_every_command_has_a_failure_row` fails when a command has no row.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

REPO = Path(__file__).resolve().parents[2]
HOST = REPO / "host"
JSON_FLAG = "--json"
ERROR_PREFIX = "error: "
TIMEOUT_S = 120.0

NONE_PLACEHOLDERS = {
    "tmp": "a scratch folder of the module",
    "file": "an existing regular file (a path under it cannot be created)",
    "bad_pem": "a PEM certificate cut short",
    "bad_key": "a PEM public key cut short",
    "issuer_key": "a valid EC P-256 public key (PEM)",
    "home": "an issuer home made by `issuer init` (SQLite, no HSM)",
    "nohome": "a folder without an issuer home",
    "ca_dir": "a provider CA folder (passphrase unknown to the command)",
    "root": "that CA's root.pem",
    "empty_dir": "an existing empty folder",
    "results_bad": "a file that is not a bureau result file",
    "provider_home": "a provider home made by `provider keys init` (no peers)",
    "bureau_home": "a bureau home made by `bureau keys init` (its SoftHSM2 token, no peers)",
    "mailer_home": "a mailer home made by `mailer keys init`",
    "shipper_home": "a shipper home made by `shipper keys init`",
    "bureau_cert": "that bureau's certificate file",
    "mailer_cert": "that mailer's certificate file",
    "shipper_cert": "that shipper's certificate file",
    "bad_csv": "a CSV file whose header is wrong",
    "not_utf8": "a file that is not UTF-8 text",
    "dead_url": "an https:// URL where nothing listens",
    "hash": "64 hex digits",
    "fd": "a file descriptor holding the case's fd_data",
    "fd2": "another one, holding fd2_data",
    "run": "plain or json: which of a row's two runs (they run at once: a path a failing "
    "command may create for a moment must differ between them)",
}
SIM_PLACEHOLDERS = {
    **{k: NONE_PLACEHOLDERS[k] for k in ("tmp", "file", "issuer_key", "hash", "fd", "fd2", "run")},
    "ca_dir": "the folder of the CA that initialized the card",
    "reader": "the reader holding the card prepared in the case's `card` state",
    "root": "the root.pem of the CA that initialized that card",
    "blob_other": "a sealed blob for another card",
    "blob_bad_signature": "the card's own blob with a flipped bit in the issuer signature",
}

HSM_PLACEHOLDERS = {
    "home": "an issuer home whose issuer HSM service runs, with cards in stock and, before "
    "each run, one more order naming a mailer the records know and this HSM does not hold",
}


@dataclass(frozen=True)
class Case:
    """One command line that must fail, and how."""

    command: str
    """The command path as `sealcard ...` spells it, e.g. "card pin verify"."""
    args: tuple[str, ...]
    """Everything after `sealcard`, with {placeholders}."""
    code: int
    says: str
    """A part of the one stderr line (after 'error: ') that shows it failed for this reason."""
    error: str | None = None
    """The JSON "error" kind, when it is stable."""
    needs: str = "none"
    card: str | None = None
    """For needs="sim": the card state (blank, initialized, foreign, personalized, wiped,
    terminated)."""
    fd_data: bytes | None = None
    fd2_data: bytes | None = None
    lacks: tuple[str, ...] = ()
    """Text that must not appear anywhere in the output (library internals, secrets)."""

    @property
    def id(self) -> str:
        return f"{self.command}: {self.says}"


# Exit codes, named as docs/cli.md defines them.
REFUSED, USAGE, UNAVAILABLE = 1, 2, 3

CASES: tuple[Case, ...] = (
    # -- readers and the simulator --------------------------------------------------------------
    Case("readers", ("readers",), UNAVAILABLE, "PC/SC service", "PcscServiceError"),
    Case(
        "sim up", ("sim", "up", "--cards", "0"), USAGE, "Invalid value for '--cards'", "UsageError"
    ),
    Case("sim down", ("sim", "down", "--bogus"), USAGE, "No such option", "UsageError"),
    Case(
        "sim reset",
        ("sim", "reset", "--card", "0", "--run-dir", "{tmp}/no-sim"),
        UNAVAILABLE,
        "no simulator",
        "SimulatorNotRunningError",
    ),
    Case("sim reset", ("sim", "reset"), USAGE, "name one card", "UsageError"),
    Case(
        "sim tear",
        ("sim", "tear", "--card", "0", "--run-dir", "{tmp}/no-sim"),
        UNAVAILABLE,
        "no simulator",
        "SimulatorNotRunningError",
    ),
    Case(
        "sim up",
        ("sim", "up", "--cards", "17"),
        USAGE,
        "Invalid value for '--cards': 17 is not in the range 1<=x<=16",
        "UsageError",
    ),
    Case("sim up", ("sim", "up", "--timing", "z80"), USAGE, "Invalid value for '--timing'"),
    Case("sim status", ("sim", "status", "--bogus"), USAGE, "No such option", "UsageError"),
    # -- doctor: a failed check is the answer no, with the whole report in the JSON ---------
    Case(
        "doctor",
        ("doctor", "--for", "cards"),
        REFUSED,
        "1 check(s) failed: cards/pcscd",
        "CheckFailed",
    ),
    Case(
        "doctor",
        ("doctor", "--for", "issuer", "--home", "{nohome}"),
        REFUSED,
        "check(s) failed: issuer/issuer home",
        "CheckFailed",
    ),
    # -- provider ---------------------------------------------------------------------------------
    Case(
        "provider ca init",
        ("provider", "ca", "init", "--out-dir", "{file}/ca"),
        USAGE,
        "a part of that path is a file",
        "ConfigurationError",
    ),
    Case(
        "provider ca init",
        ("provider", "ca", "init", "--out-dir", "{ca_dir}"),
        USAGE,
        "refusing to overwrite a CA",
        "ConfigurationError",
    ),
    Case(
        "provider ca init",
        ("provider", "ca", "init", "--out-dir", "{tmp}/new-ca"),
        USAGE,
        "no terminal to ask for the provider CA passphrase",
        "UsageError",
    ),
    Case(
        "provider init-card",
        ("provider", "init-card", "--issuer-key", "{bad_key}", "--ca-dir", "{ca_dir}"),
        USAGE,
        "PEM text is damaged",
        "UsageError",
        lacks=("ParseError", "ASN.1"),
    ),
    Case(
        "provider init-card",
        ("provider", "init-card", "--issuer-key", "{issuer_key}", "--ca-dir", "{tmp}/no-ca"),
        USAGE,
        "no provider CA folder",
        "ConfigurationError",
        lacks=("GetPassWarning", "aborted"),
    ),
    Case(
        "provider init-card",
        ("provider", "init-card", "--issuer-key", "{issuer_key}", "--ca-dir", "{ca_dir}"),
        USAGE,
        "--passphrase-fd N",
        "UsageError",
        lacks=("GetPassWarning", "aborted"),
    ),
    Case(
        "provider check-platform",
        ("provider", "check-platform"),
        UNAVAILABLE,
        "PC/SC service",
        "PcscServiceError",
    ),
    # -- card (no card reachable) -------------------------------------------------------------
    Case(
        "card info",
        ("card", "info", "--root", "{bad_pem}"),
        USAGE,
        "PEM text is damaged",
        "ConfigurationError",
        lacks=("ParseError", "ShortData"),
    ),
    Case("card info", ("card", "info", "-r", "no such reader"), UNAVAILABLE, "PC/SC service"),
    Case("card personalize", ("card", "personalize", "--blob", "{file}"), UNAVAILABLE, "PC/SC"),
    Case(
        "card personalize",
        ("card", "personalize", "--blob", "{file}", "--bureau-pin-fd", "{fd}"),
        USAGE,
        "a PIN is 4 to 12 digits (0-9); file descriptor",
        "UsageError",
        fd_data=b"12ab\n12345678\n",
        lacks=("12ab", "12345678"),
    ),
    Case("card pin status", ("card", "pin", "status"), UNAVAILABLE, "PC/SC service"),
    Case(
        "card pin verify",
        ("card", "pin", "verify", "--pin-fd", "{fd}"),
        USAGE,
        "a PIN is 4 to 12 digits",
        "UsageError",
        fd_data=b"12ab\n",
        lacks=("12ab",),
    ),
    Case(
        "card pin change",
        ("card", "pin", "change", "--pin-fd", "{fd}"),
        USAGE,
        "no terminal to ask for the new PIN",
        "UsageError",
        fd_data=b"1234\n",
    ),
    Case(
        "card pin unblock",
        ("card", "pin", "unblock", "--puk-fd", "{fd}"),
        USAGE,
        "a PUK is 8 to 12 digits",
        "UsageError",
        fd_data=b"1234\n",
    ),
    Case("card pin set", ("card", "pin", "set"), USAGE, "--new-pin-fd N", "UsageError"),
    Case("card pubkey", ("card", "pubkey"), UNAVAILABLE, "PC/SC service", "PcscServiceError"),
    Case(
        "card sign",
        ("card", "sign", "--hash", "{hash}", "--pin-fd", "{fd}"),
        USAGE,
        "a PIN is 4 to 12 digits",
        "UsageError",
        fd_data=b"",
    ),
    Case(
        "card sign",
        ("card", "sign", "--hash", "{hash}", "--pin-fd", "{fd}"),
        USAGE,
        "a PIN is 4 to 12 digits",
        "UsageError",
        fd_data=b"12345x\n",
        lacks=("12345x",),
    ),
    Case(
        "card sign",
        ("card", "sign", "--hash", "zz"),
        USAGE,
        "Invalid value for --hash: not hex; a hash is 32 bytes (64 hex digits)",
        "UsageError",
    ),
    Case(
        "card authenticate",
        ("card", "authenticate"),
        USAGE,
        "give the provider root certificate",
        "ConfigurationError",
    ),
    # -- issuer -----------------------------------------------------------------------------------
    Case(
        "issuer init",
        ("issuer", "init", "--home", "{file}/home"),
        USAGE,
        "cannot create the issuer home",
        "ConfigurationError",
    ),
    Case(
        "issuer init",
        ("issuer", "init", "--home", "{tmp}/tls-home", "--tls-cert", "{file}"),
        USAGE,
        "give both --tls-cert and --tls-key, or neither",
        "UsageError",
    ),
    Case(
        "issuer user import",
        ("issuer", "user", "import", "--home", "{home}", "--file", "{bad_csv}"),
        USAGE,
        "Missing option '--credentials-out'",
        "UsageError",
    ),
    Case(
        "issuer user import",
        (
            *("issuer", "user", "import", "--home", "{home}", "--file", "{bad_csv}"),
            *("--credentials-out", "{tmp}/first-logins.csv"),
        ),
        USAGE,
        "customers file: line 1: the header is",
        "IntakeFileError",
    ),
    Case(
        "issuer user import",
        (
            *("issuer", "user", "import", "--home", "{home}", "--file", "{not_utf8}"),
            *("--credentials-out", "{tmp}/first-logins.csv"),
        ),
        USAGE,
        "is not UTF-8 text",
        "ConfigurationError",
    ),
    Case(
        "issuer user import",
        (
            *("issuer", "user", "import", "--home", "{home}", "--file", "{bad_csv}"),
            *("--credentials-out", "{file}"),
        ),
        USAGE,
        "credentials are never written over a file",
        "ConfigurationError",
    ),
    Case(
        "issuer user add",
        ("issuer", "user", "add", "--home", "{nohome}", "--name", "A", "--address", "B"),
        USAGE,
        "no issuer home",
        "ConfigurationError",
    ),
    Case(
        "issuer order",
        ("issuer", "order", "--home", "{home}", "--user", "99", "--mailer", "post"),
        USAGE,
        "no user 99",
        "RecordNotFoundError",
    ),
    Case(
        "issuer order",
        ("issuer", "order", "--home", "{home}"),
        USAGE,
        "--user is required to order a card",
        "UsageError",
    ),
    Case(
        "issuer order",
        ("issuer", "order", "--home", "{home}", "list"),
        USAGE,
        "takes its options after its name",
        "UsageError",
    ),
    Case(
        "issuer order import",
        ("issuer", "order", "import", "--home", "{home}", "--file", "{bad_csv}"),
        USAGE,
        "orders file: line 1: the header is",
        "IntakeFileError",
    ),
    Case(
        "issuer order import",
        ("issuer", "order", "import", "--home", "{home}", "--file", "{not_utf8}"),
        USAGE,
        "is not UTF-8 text; save it as UTF-8",
        "ConfigurationError",
    ),
    Case(
        "issuer order list",
        ("issuer", "order", "list", "--home", "{nohome}"),
        USAGE,
        "no issuer home",
        "ConfigurationError",
    ),
    Case(
        "issuer order list",
        ("issuer", "order", "list", "--home", "{home}", "--state", "lost-in-space"),
        USAGE,
        "Invalid value for '--state'",
        "UsageError",
    ),
    Case(
        "issuer order retry",
        ("issuer", "order", "retry", "--home", "{home}", "--order", "99"),
        USAGE,
        "no order 99",
        "RecordNotFoundError",
    ),
    Case(
        "issuer order cancel",
        ("issuer", "order", "cancel", "--home", "{home}", "--order", "99", "--note", "gone"),
        USAGE,
        "no order 99",
        "RecordNotFoundError",
    ),
    Case(
        "issuer order cancel",
        ("issuer", "order", "cancel", "--home", "{home}"),
        USAGE,
        "Missing option '--order'",
        "UsageError",
    ),
    Case(
        "issuer operator add",
        ("issuer", "operator", "add", "--home", "{nohome}", "--login", "o", "--role", "operator"),
        USAGE,
        "no issuer home",
        "ConfigurationError",
        lacks=("password",),
    ),
    Case(
        "issuer operator add",
        ("issuer", "operator", "add", "--home", "{home}", "--login", "o", "--role", "operator"),
        USAGE,
        "no terminal to ask for the new staff password: give it on a file descriptor",
        "UsageError",
    ),
    Case(
        "issuer operator add",
        (
            *("issuer", "operator", "add", "--home", "{home}", "--login", "o"),
            *("--role", "operator", "--password-fd", "{fd}"),
        ),
        USAGE,
        "a password has at least 12 characters",
        "BadRequestError",
        fd_data=b"hunter2\n",
        lacks=("hunter2",),
    ),
    Case(
        "issuer operator add",
        ("issuer", "operator", "add", "--home", "{home}", "--login", "o", "--role", "admin"),
        USAGE,
        "Invalid value for '--role'",
        "UsageError",
    ),
    Case(
        "issuer operator list",
        ("issuer", "operator", "list", "--home", "{nohome}"),
        USAGE,
        "no issuer home",
        "ConfigurationError",
    ),
    Case(
        "issuer serve",
        ("issuer", "serve", "--home", "{nohome}", "--no-hsm"),
        USAGE,
        "no issuer home",
        "ConfigurationError",
    ),
    Case(
        "issuer serve",
        ("issuer", "serve", "--home", "{home}", "--no-hsm", "--root", "{tmp}/no-root.pem"),
        USAGE,
        "Invalid value for '--root'",
        "UsageError",
    ),
    Case(
        "issuer serve",
        ("issuer", "serve", "--home", "{home}", "--no-hsm", "--listen", "nonsense"),
        USAGE,
        "listen address 'nonsense' is not HOST:PORT",
        "ConfigurationError",
    ),
    Case(
        "issuer serve",
        ("issuer", "serve", "--home", "{home}"),
        USAGE,
        "run `sealcard issuer hsm init`",
        "ConfigurationError",
    ),
    Case(
        "issuer audit verify",
        ("issuer", "audit", "verify", "--home", "{home}"),
        USAGE,
        "no audit key at",
        "ConfigurationError",
    ),
    Case(
        "issuer audit verify",
        ("issuer", "audit", "verify", "--home", "{home}", "--key", "{bad_key}"),
        USAGE,
        "give the audit key's public half (PEM)",
        "ConfigurationError",
        lacks=("cryptography.io", "MalformedFraming"),
    ),
    Case(
        "issuer audit verify",
        ("issuer", "audit", "verify", "--home", "{home}", "--file", "{tmp}/no-export.jsonl"),
        USAGE,
        "Invalid value for '--file'",
        "UsageError",
    ),
    Case(
        "issuer audit export",
        ("issuer", "audit", "export", "--home", "{home}", "--out", "{file}"),
        USAGE,
        "exists already; give a new file (an export is never overwritten)",
        "ConfigurationError",
    ),
    Case(
        "issuer audit export",
        ("issuer", "audit", "export", "--home", "{nohome}", "--out", "{tmp}/log.jsonl"),
        USAGE,
        "no issuer home",
        "ConfigurationError",
    ),
    Case(
        "issuer audit checkpoint",
        ("issuer", "audit", "checkpoint", "--home", "{home}"),
        USAGE,
        "run `sealcard issuer hsm init`",
        "ConfigurationError",
    ),
    Case("issuer status", ("issuer", "status", "--home", "{nohome}"), USAGE, "no issuer home"),
    Case("issuer seal", ("issuer", "seal", "--home", "{home}"), USAGE, "hsm init"),
    Case(
        "issuer seal",
        ("issuer", "seal", "--home", "{home}", "--chunk-size", "4"),
        REFUSED,
        "order(s) could not be sealed and are on hold",
        "OrdersHeld",
        needs="hsm",
    ),
    Case(
        "issuer pack import-fake",
        ("issuer", "pack", "import-fake", "--home", "{nohome}", "--cards", "1"),
        USAGE,
        "no issuer home",
    ),
    Case("issuer pack list", ("issuer", "pack", "list", "--home", "{nohome}"), USAGE, "no issuer"),
    Case(
        "issuer pack import-cards",
        ("issuer", "pack", "import-cards", "--home", "{home}", "--root", "{bad_pem}"),
        USAGE,
        "PEM text is damaged",
        "ConfigurationError",
    ),
    Case("issuer hsm serve", ("issuer", "hsm", "serve", "--home", "{nohome}"), USAGE, "no issuer"),
    Case("issuer hsm init", ("issuer", "hsm", "init", "--home", "{nohome}"), USAGE, "no issuer"),
    Case(
        "issuer hsm mailer add",
        ("issuer", "hsm", "mailer", "add", "--home", "{home}", "--id", "m", "--key", "{bad_key}"),
        USAGE,
        "PEM text is damaged",
        "UsageError",
        lacks=("ASN.1",),
    ),
    Case(
        "issuer hsm mailer list",
        ("issuer", "hsm", "mailer", "list", "--home", "{home}"),
        USAGE,
        "hsm init",
    ),
    Case("issuer hsm xpub", ("issuer", "hsm", "xpub", "--home", "{home}"), USAGE, "hsm init"),
    Case("issuer hsm start", ("issuer", "hsm", "start", "--home", "{nohome}"), USAGE, "no issuer"),
    Case("issuer hsm stop", ("issuer", "hsm", "stop", "--home", "{nohome}"), USAGE, "no issuer"),
    Case(
        "issuer hsm issuer-key",
        ("issuer", "hsm", "issuer-key", "--home", "{home}", "--out", "{file}/key.pem"),
        USAGE,
        "cannot write the issuer key file",
        "ConfigurationError",
    ),
    Case(
        "issuer hsm backup-seed",
        (
            *("issuer", "hsm", "backup-seed", "--home", "{home}"),
            *("--threshold", "2", "--shares", "3", "--out-dir", "{empty_dir}"),
        ),
        USAGE,
        "exists already",
        "ConfigurationError",
    ),
    Case(
        "issuer hsm backup-seed",
        (
            *("issuer", "hsm", "backup-seed", "--home", "{home}", "--format", "pdf"),
            *("--threshold", "2", "--shares", "3", "--out-dir", "{tmp}/shares-{run}"),
        ),
        USAGE,
        "run `sealcard issuer hsm init`",
        "ConfigurationError",
    ),
    Case(
        "issuer hsm backup-seed",
        (
            *("issuer", "hsm", "backup-seed", "--home", "{home}", "--format", "png"),
            *("--threshold", "2", "--shares", "3", "--out-dir", "{tmp}/shares-png"),
        ),
        USAGE,
        "Invalid value for '--format'",
        "UsageError",
    ),
    # -- issuer: sealed party files (docs/files.md); the home has no party keys yet ----------
    Case(
        "issuer keys init",
        ("issuer", "keys", "init", "--home", "{home}", "--name", "bank"),
        USAGE,
        "run `sealcard issuer hsm init`",
        "ConfigurationError",
    ),
    Case(
        "issuer keys init",
        ("issuer", "keys", "init", "--home", "{home}", "--name", "Bank of X"),
        USAGE,
        "Invalid value for '--name': party name 'Bank of X': use lower-case letters",
        "UsageError",
    ),
    Case(
        "issuer keys export",
        ("issuer", "keys", "export", "--home", "{home}", "--out", "{tmp}/issuer.pem"),
        USAGE,
        "the issuer has no party keys yet: run `sealcard issuer keys init --name NAME`",
        "PartyError",
    ),
    Case(
        "issuer party add",
        ("issuer", "party", "add", "--home", "{home}", "--role", "bureau", "--cert", "{bad_pem}"),
        USAGE,
        "not an X.509 certificate file",
        "ConfigurationError",
    ),
    Case(
        "issuer party add",
        (
            *("issuer", "party", "add", "--home", "{home}", "--role", "shipper"),
            *("--cert", "{bureau_cert}"),
        ),
        USAGE,
        "the certificate is a bureau's, not a shipper's",
        "PartyError",
    ),
    Case(
        "issuer party add",
        (
            *("issuer", "party", "add", "--home", "{home}", "--role", "mailer"),
            *("--cert", "{mailer_cert}"),
        ),
        USAGE,
        "run `sealcard issuer hsm init`",  # a mailer's letter key goes to the issuer HSM
        "ConfigurationError",
    ),
    Case(
        "issuer party list",
        ("issuer", "party", "list", "--home", "{nohome}"),
        USAGE,
        "no issuer home",
        "ConfigurationError",
    ),
    Case(
        "issuer pack import",
        ("issuer", "pack", "import", "--home", "{home}", "--file", "{file}"),
        USAGE,
        "the issuer has no party keys yet",
        "PartyError",
    ),
    Case(
        "issuer pack import",
        ("issuer", "pack", "import", "--home", "{home}", "--file", "{tmp}/no-pack.p7m"),
        USAGE,
        "Invalid value for '--file'",
        "UsageError",
    ),
    Case(
        "issuer export",
        ("issuer", "export", "--home", "{nohome}"),
        USAGE,
        "no issuer home",
        "ConfigurationError",
    ),
    Case(
        "issuer export",
        ("issuer", "export", "--home", "{home}", "--out-dir", "{tmp}/export-{run}"),
        USAGE,
        "the issuer has no party keys yet",
        "PartyError",
    ),
    Case(
        "issuer export",
        ("issuer", "export", "--home", "{home}", "--out-dir", "{file}/export"),
        USAGE,
        "cannot create the output folder",
        "ConfigurationError",
    ),
    Case(
        "issuer receive",
        ("issuer", "receive", "--home", "{home}", "--file", "{file}", "--file", "{bad_pem}"),
        USAGE,
        "the issuer has no party keys yet",
        "PartyError",
    ),
    Case(
        "issuer receive",
        ("issuer", "receive", "--home", "{home}"),
        USAGE,
        "Missing option '--file'",
        "UsageError",
    ),
    Case(
        "issuer results",
        ("issuer", "results", "--home", "{home}", "--results", "{results_bad}"),
        USAGE,
        "the issuer has no party keys yet",
        "PartyError",
    ),
    Case(
        "issuer results",
        ("issuer", "results", "--home", "{home}", "--results", "{tmp}/results.json.gone"),
        USAGE,
        "Invalid value for '--results'",
        "UsageError",
    ),
    Case(
        "issuer card reset-pin",
        ("issuer", "card", "reset-pin", "--home", "{nohome}", "--new-pin-fd", "{fd}"),
        USAGE,
        "no issuer home",
        fd_data=b"1234\n",
    ),
    Case(
        "issuer card terminate",
        ("issuer", "card", "terminate", "--home", "{home}"),
        USAGE,
        "give --yes",
        "UsageError",
    ),
    # -- provider, bureau, mailer, shipper: their homes, keys, peers and files ----------------
    Case(
        "provider keys init",
        ("provider", "keys", "init", "--home", "{tmp}/provider-{run}", "--name", "Acme Cards"),
        USAGE,
        "Invalid value for '--name': party name 'Acme Cards'",
        "UsageError",
    ),
    Case(
        "provider keys init",
        (
            *("provider", "keys", "init", "--home", "{tmp}/provider-{run}", "--name", "acme"),
            *("--out", "{tmp}/provider.pem"),
        ),
        USAGE,
        "written by `sealcard provider keys export --out FILE`",
        "UsageError",
    ),
    Case(
        "provider keys export",
        ("provider", "keys", "export", "--home", "{nohome}", "--out", "{tmp}/provider.pem"),
        USAGE,
        "no provider home at",
        "PartyError",
    ),
    Case(
        "provider keys export",
        (
            *("provider", "keys", "export", "--home", "{provider_home}", "--ca-dir"),
            *("{tmp}/no-ca", "--out", "{tmp}/provider.pem"),
        ),
        USAGE,
        "no provider CA folder at",
        "ConfigurationError",
    ),
    Case(
        "provider party add",
        ("provider", "party", "add", "--home", "{nohome}", "--role", "issuer", "--cert", "{file}"),
        USAGE,
        "run `sealcard provider keys init --name NAME`",
        "PartyError",
    ),
    Case(
        "provider party add",
        ("provider", "party", "add", "--home", "{nohome}", "--role", "bureau", "--cert", "{file}"),
        USAGE,
        "Invalid value for '--role'",  # a provider sends its packs to the issuer only
        "UsageError",
    ),
    Case(
        "provider party list",
        ("provider", "party", "list", "--home", "{nohome}"),
        USAGE,
        "no provider home at",
        "PartyError",
    ),
    Case(
        "provider init-pack",
        ("provider", "init-pack", "--home", "{nohome}", "--pack", "PACK-1"),
        USAGE,
        "no provider home at",
        "PartyError",
    ),
    Case(
        "provider init-pack",
        (
            *("provider", "init-pack", "--home", "{provider_home}", "--pack", "PACK-1"),
            # its own file per run: the two runs go at once, and a default outbox the one
            # made (and removed on failure) was gone under the other's check ('its folder
            # does not exist' once in a full suite)
            *("--ca-dir", "{ca_dir}", "--out", "{tmp}/device-init-{run}.p7m"),
        ),
        USAGE,
        "no issuer is registered: `sealcard provider party add --role issuer",
        "PartyError",
    ),
    Case(
        "provider init-pack",
        ("provider", "init-pack", "--pack", "pack one"),
        USAGE,
        "Invalid value for '--pack': pack or batch id 'pack one'",
        "UsageError",
    ),
    Case(
        "bureau keys init",
        ("bureau", "keys", "init", "--home", "{file}/home", "--name", "print-house"),
        USAGE,
        "cannot create the bureau home",
        "ConfigurationError",
    ),
    Case(
        "bureau keys init",
        ("bureau", "keys", "init", "--home", "{bureau_home}", "--name", "print-house"),
        USAGE,
        "already has its keys",
        "PartyError",
    ),
    Case(
        "bureau keys export",
        ("bureau", "keys", "export", "--home", "{nohome}", "--out", "{tmp}/bureau.pem"),
        USAGE,
        "no bureau home at",
        "PartyError",
    ),
    Case(
        "bureau party add",
        (
            *("bureau", "party", "add", "--home", "{bureau_home}", "--role", "issuer"),
            *("--cert", "{mailer_cert}"),
        ),
        USAGE,
        "the certificate is a mailer's, not an issuer's",
        "PartyError",
    ),
    Case(
        "bureau party add",
        (
            *("bureau", "party", "add", "--home", "{bureau_home}", "--role", "mailer"),
            *("--cert", "{file}"),
        ),
        USAGE,
        "not an X.509 certificate file",
        "ConfigurationError",
    ),
    Case(
        "bureau party list",
        ("bureau", "party", "list", "--home", "{nohome}"),
        USAGE,
        "no bureau home at",
        "PartyError",
    ),
    Case(
        "bureau personalize",
        ("bureau", "personalize", "--home", "{nohome}", "--file", "{file}"),
        USAGE,
        "no bureau home at",
        "PartyError",
    ),
    Case(
        "bureau personalize",
        ("bureau", "personalize", "--home", "{bureau_home}", "--file", "{file}"),
        UNAVAILABLE,
        "PC/SC service",
        "PcscServiceError",
    ),
    Case(
        "bureau personalize",
        (
            *("bureau", "personalize", "--home", "{bureau_home}", "--file", "{file}"),
            *("--out-dir", "{file}/out"),
        ),
        USAGE,
        "cannot create the output folder",
        "ConfigurationError",
    ),
    Case(
        "bureau personalize",
        (
            *("bureau", "personalize", "--home", "{bureau_home}", "--file", "{file}"),
            *("--pin-source", "none"),
        ),
        USAGE,
        "Invalid value for '--pin-source'",
        "UsageError",
    ),
    Case(
        "mailer keys init",
        (
            *("mailer", "keys", "init", "--home", "{tmp}/mailer-{run}", "--name", "post"),
            *("--out", "{file}/mailer.pem"),
        ),
        USAGE,
        "its folder",
        "ConfigurationError",
    ),
    Case(
        "mailer keys export",
        ("mailer", "keys", "export", "--home", "{mailer_home}", "--out", "{file}/mailer.pem"),
        USAGE,
        "cannot write the certificate file",
        "ConfigurationError",
    ),
    Case(
        "mailer party add",
        (
            *("mailer", "party", "add", "--home", "{mailer_home}", "--role", "issuer"),
            *("--cert", "{bureau_cert}"),
        ),
        USAGE,
        "the certificate is a bureau's, not an issuer's",
        "PartyError",
    ),
    Case(
        "mailer party list",
        ("mailer", "party", "list", "--home", "{nohome}"),
        USAGE,
        "no mailer home at",
        "PartyError",
    ),
    Case(
        "mailer letters",
        (
            *("mailer", "letters", "--home", "{mailer_home}", "--file", "{file}"),
            *("--out-dir", "{tmp}/letters-{run}"),  # its own folder per run, as init-pack's
        ),
        USAGE,
        "no issuer is registered: `sealcard mailer party add --role issuer",
        "PartyError",
    ),
    Case(
        "mailer letters",
        ("mailer", "letters", "--home", "{mailer_home}"),
        USAGE,
        "Missing option '--file'",
        "UsageError",
    ),
    Case(
        "shipper keys init",
        ("shipper", "keys", "init", "--home", "{tmp}/shipper-{run}", "--name", "Parcel Co"),
        USAGE,
        "Invalid value for '--name'",
        "UsageError",
    ),
    Case(
        "shipper keys export",
        ("shipper", "keys", "export", "--home", "{nohome}", "--out", "{tmp}/shipper.pem"),
        USAGE,
        "no shipper home at",
        "PartyError",
    ),
    Case(
        "shipper party add",
        (
            *("shipper", "party", "add", "--home", "{shipper_home}", "--role", "bureau"),
            *("--cert", "{shipper_cert}"),
        ),
        USAGE,
        "that is our own certificate",
        "PartyError",
    ),
    Case(
        "shipper party list",
        ("shipper", "party", "list", "--home", "{nohome}"),
        USAGE,
        "no shipper home at",
        "PartyError",
    ),
    Case(
        "shipper manifest",
        (
            *("shipper", "manifest", "--home", "{shipper_home}", "--file", "{file}"),
            *("--out-dir", "{tmp}/manifest-{run}"),  # its own folder per run, as init-pack's
        ),
        USAGE,
        "no issuer is registered: `sealcard shipper party add --role issuer",
        "PartyError",
    ),
    # -- user: the customer's computer and the issuer's HTTPS API ---------------------------------
    Case(
        "user activate",
        (
            *("user", "activate", "--issuer", "{dead_url}", "--login", "c1"),
            *("--pin-fd", "{fd}"),
        ),
        USAGE,
        "Invalid value for --pin-fd: a PIN is 4 to 12 digits",
        "UsageError",
        fd_data=b"12ab\n",
        lacks=("12ab",),
    ),
    Case(
        "user activate",
        ("user", "activate", "--issuer", "http://bank.example", "--login", "c1"),
        USAGE,
        "the issuer URL must be https://, not 'http://bank.example'",
        "ConfigurationError",
    ),
    Case(
        "user check",
        ("user", "check", "--issuer", "{dead_url}", "--login", "c1"),
        USAGE,
        "no terminal to ask for the password: give it on a file descriptor (--password-fd N",
        "UsageError",
    ),
    Case(
        "user check",
        ("user", "check", "--issuer", "{dead_url}", "--login", "c1", "--password-fd", "{fd}"),
        UNAVAILABLE,
        "cannot reach the issuer at https://127.0.0.1:",
        "IssuerUnreachableError",
        fd_data=b"correct horse battery\n",
        lacks=("correct horse",),
    ),
    Case(
        "user check",
        ("user", "check", "--issuer", "{dead_url}", "--login", "c1", "--issuer-cert", "{file}"),
        USAGE,
        "it holds no PEM certificate",
        "ConfigurationError",
        lacks=("_ssl.c",),
    ),
    Case(
        "user report-lost",
        (
            *("user", "report-lost", "--order", "7", "--issuer", "{dead_url}", "--login", "c1"),
            *("--password-fd", "{fd}"),
        ),
        UNAVAILABLE,
        "cannot reach the issuer",
        "IssuerUnreachableError",
        fd_data=b"correct horse battery\n",
    ),
    Case(
        "user reset-pin",
        (
            *("user", "reset-pin", "--issuer", "{dead_url}", "--login", "c1"),
            *("--new-pin-fd", "{fd}"),
        ),
        USAGE,
        "Invalid value for --new-pin-fd: a PIN is 4 to 12 digits",
        "UsageError",
        fd_data=b"12\n",
    ),
    Case(
        "user terminate",
        ("user", "terminate", "--issuer", "{dead_url}", "--login", "c1"),
        USAGE,
        "give --yes to terminate without a question",
        "UsageError",
    ),
    # -- on simulated cards (tests/sim) -----------------------------------------------------------
    Case(
        "card info",
        ("card", "info", "-r", "{reader}", "--root", "{root}"),
        REFUSED,
        "NOT GENUINE",
        "NotGenuine",
        needs="sim",
        card="foreign",
    ),
    Case(
        "card authenticate",
        ("card", "authenticate", "-r", "{reader}", "--root", "{root}"),
        REFUSED,
        "NOT GENUINE",
        "NotGenuine",
        needs="sim",
        card="foreign",
    ),
    Case(
        "card info",
        ("card", "info", "-r", "no such reader"),
        UNAVAILABLE,
        "no reader matches 'no such reader'; the readers are 0: Sealcard Sim",
        "ReaderNotFoundError",
        needs="sim",
        card="blank",
    ),
    Case(
        "card info",
        ("card", "info", "-r", "sealcard sim"),
        USAGE,
        "matches 4 readers",
        "ConfigurationError",
        needs="sim",
        card="blank",
    ),
    Case(
        "card personalize",
        ("card", "personalize", "-r", "{reader}", "--blob", "{blob_other}"),
        REFUSED,
        "the blob is for card 0000000000000000",
        "BlobNotForThisCardError",
        needs="sim",
        card="initialized",
    ),
    Case(
        "card personalize",
        ("card", "personalize", "-r", "{reader}", "--blob", "{blob_bad_signature}"),
        REFUSED,
        "the card refused the blob, unchanged: its issuer signature does not verify",
        "BadSignatureError",
        needs="sim",
        card="initialized",
    ),
    Case(
        "card pin verify",
        ("card", "pin", "verify", "-r", "{reader}", "--pin-fd", "{fd}"),
        REFUSED,
        "INITIALIZED: it has no user key and no PIN until it is personalized",
        "PinNotSetError",
        needs="sim",
        card="initialized",
        fd_data=b"482916\n",
        lacks=("no PIN is set yet", "482916"),
    ),
    Case(
        "card pin verify",
        ("card", "pin", "verify", "-r", "{reader}", "--pin-fd", "{fd}"),
        REFUSED,
        "was terminated by its issuer",
        "PinNotSetError",
        needs="sim",
        card="terminated",
        fd_data=b"482916\n",
        lacks=("no PIN is set yet",),
    ),
    Case(
        "card pin verify",
        ("card", "pin", "verify", "-r", "{reader}", "--pin-fd", "{fd}"),
        REFUSED,
        "wrong PIN",
        "InvalidPinError",
        needs="sim",
        card="personalized",
        fd_data=b"000000\n",
        lacks=("000000",),
    ),
    Case(
        "card pin change",
        ("card", "pin", "change", "-r", "{reader}", "--pin-fd", "{fd}", "--new-pin-fd", "{fd2}"),
        REFUSED,
        "wrong PIN",
        "InvalidPinError",
        needs="sim",
        card="personalized",
        fd_data=b"000000\n",
        fd2_data=b"1111\n",
    ),
    Case(
        "card pin unblock",
        ("card", "pin", "unblock", "-r", "{reader}", "--puk-fd", "{fd}", "--new-pin-fd", "{fd2}"),
        REFUSED,
        "wrong PUK",
        "InvalidPinError",
        needs="sim",
        card="personalized",
        fd_data=b"00000000\n",
        fd2_data=b"1111\n",
    ),
    Case(
        "card pin set",
        ("card", "pin", "set", "-r", "{reader}", "--new-pin-fd", "{fd}", "--puk-fd", "{fd2}"),
        REFUSED,
        "already has a PIN",
        "WrongStateError",
        needs="sim",
        card="personalized",
        fd_data=b"1234\n",
        fd2_data=b"12345678\n",
    ),
    Case(
        "card pubkey",
        ("card", "pubkey", "-r", "{reader}"),
        REFUSED,
        "BLANK: it holds no user key until it is personalized",
        "NoUserKey",
        needs="sim",
        card="blank",
        lacks=("6A88",),
    ),
    Case(
        "card sign",
        ("card", "sign", "-r", "{reader}", "--hash", "{hash}", "--pin-fd", "{fd}"),
        REFUSED,
        "the user key is gone",
        "WrongStateError",
        needs="sim",
        card="wiped",
        fd_data=b"5555\n",
    ),
    Case(
        "provider init-card",
        (
            *("provider", "init-card", "-r", "{reader}", "--issuer-key", "{issuer_key}"),
            *("--ca-dir", "{ca_dir}", "--passphrase-fd", "{fd}"),
        ),
        REFUSED,
        "step A needs a BLANK card",
        "CardNotBlankError",
        needs="sim",
        card="initialized",
        fd_data=b"sim test passphrase\n",
    ),
)


def cases(needs: str) -> list[Case]:
    return [case for case in CASES if case.needs == needs]


def leaf_commands(
    group: click.Group, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, click.Command]]:
    """Every command under `group`, as ("issuer hsm init", command): the leaves, and a group
    that also runs on its own (`invoke_without_command`: `issuer order --user 1`)."""
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None, f"{name} is listed but not found"
        path = (*prefix, name)
        if isinstance(command, click.Group):
            if command.invoke_without_command:
                yield " ".join(path), command
            yield from leaf_commands(command, path)
        else:
            yield " ".join(path), command


def takes_json(command: click.Command) -> bool:
    return any(JSON_FLAG in getattr(p, "opts", ()) for p in command.params)


# ---- running the installed executable -----------------------------------------------------------


def sealcard_executable() -> str:
    """The installed `sealcard` console script (what users and scripts run)."""
    found = shutil.which("sealcard")
    if found is None:
        raise RuntimeError("the sealcard executable is not installed (tools/setup.sh)")
    return found


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a run: this tree's code, no sealcard settings from the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALCARD_")}
    env["PYTHONPATH"] = str(HOST)
    env.pop("PYTHONWARNINGS", None)
    env.update(extra or {})
    return env


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    args: list[str] = field(default_factory=list)


def run_sealcard(
    args: list[str],
    env: Mapping[str, str],
    fd_data: bytes | None = None,
    fd2_data: bytes | None = None,
) -> Run:
    """Run `sealcard ARGS` (stdin not a terminal); `{fd}` and `{fd2}` in ARGS are pipes holding
    fd_data and fd2_data."""
    pass_fds: list[int] = []
    for placeholder, data in (("{fd}", fd_data), ("{fd2}", fd2_data)):
        if data is None:
            continue
        read_end, write_end = os.pipe()
        os.write(write_end, data)
        os.close(write_end)
        pass_fds.append(read_end)
        args = [a.replace(placeholder, str(read_end)) for a in args]
    try:
        done = subprocess.run(
            [sealcard_executable(), *args],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            pass_fds=tuple(pass_fds),
            check=False,
        )
    finally:
        for fd in pass_fds:
            os.close(fd)
    return Run(done.returncode, done.stdout, done.stderr, args)


def fill(args: tuple[str, ...], values: Mapping[str, str]) -> list[str]:
    """The arguments with {placeholders} filled ({fd} is filled by run_sealcard)."""
    return [arg.format_map({**values, "fd": "{fd}", "fd2": "{fd2}"}) for arg in args]


def run_case(
    case: Case, values: Mapping[str, str], env: Mapping[str, str], *, as_json: bool
) -> Run:
    run = {"run": "json" if as_json else "plain"}
    args = fill(case.args, {**values, **run}) + ([JSON_FLAG] if as_json else [])
    return run_sealcard(args, env, case.fd_data, case.fd2_data)


def check(case: Case, run: Run, *, as_json: bool) -> None:
    """The contract of docs/cli.md for a failure (see the module docstring)."""
    shown = (
        f"sealcard {' '.join(run.args)}\n--- exit {run.code}\n--- stdout\n{run.stdout}"
        f"--- stderr\n{run.stderr}"
    )
    assert run.code == case.code, shown
    lines = run.stderr.splitlines()
    assert len(lines) == 1, f"expected exactly one stderr line\n{shown}"
    line = lines[0]
    assert line.startswith(ERROR_PREFIX) and case.says in line, shown
    assert "Traceback" not in run.stderr + run.stdout, shown
    for text in case.lacks:
        assert text not in run.stdout + run.stderr, f"{text!r} must not appear\n{shown}"
    if not as_json:
        return
    document: dict[str, Any] = json.loads(run.stdout)
    assert document["ok"] is False, shown
    assert document["exit_code"] == case.code, shown
    assert document["message"] == line.removeprefix(ERROR_PREFIX), shown
    if case.error is not None:
        assert document["error"] == case.error, shown
