"""One bad order never blocks the others, through the CLI and the real issuer HSM service:
references are checked when an order is made, an order this HSM cannot seal is held with its
reason while the rest of the batch is sealed, `issuer seal` exits 1 with the count, and an
operator sees it in `issuer order list` and ends it with `issuer order cancel`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli_failures import CASES, HSM_PLACEHOLDERS, Case, check, child_env, run_case
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sealcard.issuer.config import load_home
from sealcard.issuer.records import Records

pytestmark = pytest.mark.issuer


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sealcard.cli.main", "issuer", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def ok(home: Path, *args: str) -> dict[str, object]:
    result = cli(home, *args, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    payload: dict[str, object] = json.loads(result.stdout)
    return payload


@pytest.fixture(scope="module")
def home(service_dirs: Callable[[str], Path]) -> Iterator[Path]:
    if shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")
    root = service_dirs("held") / "home"
    ok(root, "init")
    ok(root, "hsm", "init")
    ok(root, "hsm", "start")
    try:
        key = rsa.generate_private_key(65537, 2048).public_key()
        pem = root / "post.pem"
        pem.write_bytes(
            key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        ok(root, "hsm", "mailer", "add", "--id", "post", "--key", str(pem))
        ok(root, "user", "add", "--name", "Ada", "--address", "1 Main St")
        ok(root, "pack", "import-fake", "--cards", "12", "--rsa-pool", "1")
        yield root
    finally:
        cli(root, "hsm", "stop")


def test_an_order_naming_an_unknown_mailer_is_refused(home: Path) -> None:
    result = cli(home, "order", "--user", "1", "--mailer", "nosuch")
    assert result.returncode == 2  # a wrong value given (docs/cli.md)
    assert result.stderr.count("\n") == 1 and "no mailer 'nosuch'" in result.stderr
    assert "Traceback" not in result.stderr
    as_json = cli(home, "order", "--user", "1", "--mailer", "nosuch", "--json")
    assert as_json.returncode == 2 and json.loads(as_json.stdout)["ok"] is False
    assert ok(home, "order", "list")["orders"] == []


def test_a_bad_mailer_key_file_is_a_usage_error(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PUBLIC KEY-----\nnot base64 at all\n-----END PUBLIC KEY-----\n")
    result = cli(home, "hsm", "mailer", "add", "--id", "x", "--key", str(bad))
    assert result.returncode == 2 and "give the mailer's RSA public key" in result.stderr
    garbage = tmp_path / "garbage.der"
    garbage.write_bytes(b"\x30\x03\x02\x01\x00")
    result = cli(home, "hsm", "mailer", "add", "--id", "x", "--key", str(garbage))
    assert result.returncode == 2  # refused before the HSM (which refuses it too: tests/hsm)
    assert "give the mailer's RSA public key" in result.stderr and "replay" not in result.stderr
    assert "x" not in ok(home, "hsm", "mailer", "list")["mailers"]  # type: ignore[operator]


def test_an_order_this_hsm_cannot_seal_is_held_and_the_rest_sealed(home: Path) -> None:
    good = ok(home, "order", "--user", "1", "--count", "2", "--mailer", "post")["orders"]
    # A mailer the records know but this host's issuer HSM does not (e.g. registered on
    # another sealing host only): the order is accepted, the HSM refuses that card.
    records = Records.open(load_home(home).database_url, "test")
    with records.db:
        records.record_mailers(["elsewhere"])
    (ghost,) = ok(home, "order", "--user", "1", "--mailer", "elsewhere")["orders"]  # type: ignore[misc]
    more = ok(home, "order", "--user", "1", "--mailer", "post")["orders"]

    result = cli(home, "seal", "--chunk-size", "8")
    assert result.returncode == 1
    assert "sealed 3 order(s)" in result.stdout
    assert result.stderr.startswith("error: 1 order(s) could not be sealed")
    assert f"order {ghost}: unknown-mailer" in result.stderr
    as_json = cli(home, "seal", "--json")
    assert as_json.returncode == 0  # the held order is not retried by itself
    assert json.loads(as_json.stdout)["sealed"] == 0

    listed = ok(home, "order", "list", "--held")["orders"]
    assert [(o["id"], o["state"], o["held"]) for o in listed] == [  # type: ignore[index, union-attr]
        (ghost, "card_assigned", True)
    ]
    assert "unknown-mailer" in str(listed[0]["failure_reason"])  # type: ignore[index]
    states = {o["id"]: o["state"] for o in ok(home, "order", "list")["orders"]}  # type: ignore[index, union-attr]
    assert [states[i] for i in [*good, *more]] == ["sealed"] * 3  # type: ignore[misc]
    text = cli(home, "order", "list")
    assert "on hold" in text.stdout and "reason: unknown-mailer" in text.stdout
    assert "on hold" in cli(home, "status").stdout

    cancelled = ok(
        home, "order", "cancel", "--order", str(ghost), "--note", "mailer not on this host"
    )
    assert cancelled["order"]["state"] == "cancelled"  # type: ignore[index]
    assert "was on hold: unknown-mailer" in str(cancelled["order"]["failure_reason"])  # type: ignore[index]
    assert ok(home, "order", "list", "--held")["orders"] == []
    again = cli(home, "order", "cancel", "--order", str(ghost))
    assert again.returncode == 1 and "only a requested, held or sealed order" in again.stderr


def test_order_subcommands_teach_themselves(home: Path) -> None:
    result = cli(home, "order", "--help")
    assert result.returncode == 0
    for words in ("order list", "order retry", "order cancel", "--mailer"):
        assert words in result.stdout
    missing = cli(home, "order")
    assert missing.returncode == 2 and "--user is required" in missing.stderr


def test_a_held_order_is_retried_once_its_cause_is_fixed(home: Path) -> None:
    records = Records.open(load_home(home).database_url, "test")
    with records.db:
        records.record_mailers(["later"])
    (order,) = ok(home, "order", "--user", "1", "--mailer", "later")["orders"]  # type: ignore[misc]
    held = cli(home, "seal", "--json")
    assert held.returncode == 1 and json.loads(held.stdout)["error"] == "OrdersHeld"
    not_yet = cli(home, "order", "retry", "--order", str(order + 1))  # type: ignore[operator]
    assert not_yet.returncode == 2 and f"no order {order + 1}" in not_yet.stderr  # type: ignore[operator]
    key = rsa.generate_private_key(65537, 2048).public_key()
    pem = home / "later.pem"
    pem.write_bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    ok(home, "hsm", "mailer", "add", "--id", "later", "--key", str(pem))  # the cause, fixed
    retried = ok(home, "order", "retry", "--order", str(order))
    assert retried["order"]["held"] is False  # type: ignore[index]
    again = cli(home, "order", "retry", "--order", str(order))
    assert again.returncode == 1 and "not on hold" in again.stderr
    sealed = ok(home, "seal")
    assert sealed["sealed"] == 1 and sealed["held"] == []
    assert ok(home, "order", "list", "--state", "sealed")["orders"][-1]["id"] == order  # type: ignore[index]


HSM_CASES = [case for case in CASES if case.needs == "hsm"]


@pytest.mark.parametrize("case", HSM_CASES, ids=[c.id for c in HSM_CASES])
def test_failure_row(case: Case, home: Path) -> None:
    """The "hsm" rows of tests/support/cli_failures.py (seal with an order it must hold), run
    through the installed executable, as written and with --json, each after one more order
    that this host's issuer HSM cannot seal."""
    records = Records.open(load_home(home).database_url, "test")
    with records.db:
        records.record_mailers(["elsewhere"])
    assert set(HSM_PLACEHOLDERS) == {"home"}
    for as_json in (False, True):
        ok(home, "order", "--user", "1", "--mailer", "elsewhere")
        run = run_case(case, {"home": str(home)}, child_env(), as_json=as_json)
        check(case, run, as_json=as_json)
