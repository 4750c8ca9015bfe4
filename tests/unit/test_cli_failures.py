"""Every command's failure path through the installed `sealcard` executable (no card, no HSM).

The table is tests/support/cli_failures.py (one row per failure, shared with tests/sim); this
module fills the "none" rows' placeholders, runs them all at once (each as written and with
--json) and checks each against docs/cli.md. It also walks the whole command tree: a command
without a failure row, or without --json, fails here.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cli_failures import (
    CASES,
    NONE_PLACEHOLDERS,
    Case,
    Run,
    check,
    child_env,
    leaf_commands,
    run_case,
    run_sealcard,
    takes_json,
)
from conventions import json_exempt_commands
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sealcard.cli.main import cli
from sealcard.parties.provider import ProviderCA

NONE_CASES = [case for case in CASES if case.needs == "none"]
PARALLEL_RUNS = 4


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The placeholders of the "none" rows, made once for the module."""
    tmp = tmp_path_factory.mktemp("cli-failures")
    (tmp / "a-file").write_text("not a folder\n")
    (tmp / "bad.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    (tmp / "bad-key.pem").write_text("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n")
    issuer_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    (tmp / "issuer.pub.pem").write_bytes(
        issuer_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    ProviderCA.create(tmp / "ca", b"a passphrase nobody types here")
    (tmp / "empty").mkdir()
    (tmp / "results.json").write_text('{"cards": [{"serial": "zz"}]}\n')
    (tmp / "bad.csv").write_text("C1,Ada\n")
    latin1 = "customer_ref,name,address\nC1,Zo\xeb,Gen\xe8ve\n".encode("latin-1")
    (tmp / "latin1.csv").write_bytes(latin1)
    # A port nothing listens on: bound and never listened on, held for the module, so that a
    # connection is refused at once and no other test can take the port meanwhile.
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    home = tmp / "home"
    made = run_sealcard(["issuer", "init", "--home", str(home)], child_env())
    assert made.code == 0, made.stderr
    parties = {}
    for role, name in (
        ("provider", "acme"),
        ("bureau", "print-house"),
        ("mailer", "post"),
        ("shipper", "parcel-co"),
    ):
        party_home, cert = tmp / f"{role}-home", tmp / f"{role}.pem"
        args = [role, "keys", "init", "--home", str(party_home), "--name", name]
        if role != "provider":  # its certificate file carries its root CA: `keys export`
            args += ["--out", str(cert)]
        made = run_sealcard(args, child_env())
        assert made.code == 0, made.stderr
        parties[f"{role}_home"] = str(party_home)
        if role != "provider":
            parties[f"{role}_cert"] = str(cert)
    values = {
        "tmp": str(tmp),
        "file": str(tmp / "a-file"),
        "bad_pem": str(tmp / "bad.pem"),
        "bad_key": str(tmp / "bad-key.pem"),
        "issuer_key": str(tmp / "issuer.pub.pem"),
        "home": str(home),
        "nohome": str(tmp / "no-home"),
        "ca_dir": str(tmp / "ca"),
        "root": str(tmp / "ca" / "root.pem"),
        "empty_dir": str(tmp / "empty"),
        "results_bad": str(tmp / "results.json"),
        "bad_csv": str(tmp / "bad.csv"),
        "not_utf8": str(tmp / "latin1.csv"),
        "dead_url": f"https://127.0.0.1:{dead_port}",
        "hash": "ab" * 32,
        **parties,
    }
    assert set(values) | {"fd", "fd2", "run"} == set(NONE_PLACEHOLDERS)
    with dead:
        yield values


@pytest.fixture(scope="module")
def none_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """No PC/SC service (pcscd's socket points nowhere), no simulator, no terminal."""
    nowhere = tmp_path_factory.mktemp("no-pcscd")
    return child_env(
        {
            "PCSCLITE_CSOCK_NAME": str(nowhere / "pcscd.comm"),
            "SEALCARD_SIM_DIR": str(nowhere / "sim"),
        }
    )


@pytest.fixture(scope="module")
def none_runs(world: dict[str, str], none_env: dict[str, str]) -> dict[tuple[int, bool], Run]:
    """Every "none" row run as written and with --json (in parallel: they share nothing but
    read-only files)."""
    exempt = json_exempt_commands()
    jobs = [
        (index, as_json)
        for index, case in enumerate(NONE_CASES)
        for as_json in (False, True)
        if not (as_json and case.command in exempt)
    ]
    with ThreadPoolExecutor(PARALLEL_RUNS) as pool:
        runs = pool.map(
            lambda job: run_case(NONE_CASES[job[0]], world, none_env, as_json=job[1]), jobs
        )
        return dict(zip(jobs, runs, strict=True))


def _ids() -> Iterator[str]:
    for case in NONE_CASES:
        yield case.id


@pytest.mark.parametrize("index", range(len(NONE_CASES)), ids=list(_ids()))
def test_failure_row(index: int, none_runs: dict[tuple[int, bool], Run]) -> None:
    case: Case = NONE_CASES[index]
    check(case, none_runs[(index, False)], as_json=False)
    if (index, True) in none_runs:
        check(case, none_runs[(index, True)], as_json=True)


def test_nothing_half_done(world: dict[str, str], none_runs: dict[tuple[int, bool], Run]) -> None:
    """The failed rows left no folder or file behind (and did not touch existing ones)."""
    tmp = Path(world["tmp"])
    assert not (tmp / "new-ca").exists()  # refused before the passphrase: no empty CA folder
    assert not any(Path(world["empty_dir"]).iterdir())  # backup-seed did not write into it
    assert sorted(p.name for p in Path(world["ca_dir"]).iterdir()) == ["root-key.pem", "root.pem"]
    assert not Path(world["nohome"]).exists()
    assert not (tmp / "shares-plain").exists()  # backup-seed removed the folder it made
    assert not (tmp / "shares-json").exists()
    assert not (tmp / "first-logins.csv").exists()  # an import refused wrote no credentials
    assert not (tmp / "tls-home").exists()  # issuer init refused before making the home
    for run in ("plain", "json"):  # refused before anything was made
        assert not (tmp / f"export-{run}").exists()
        assert not (tmp / f"provider-{run}").exists()
        assert not (tmp / f"mailer-{run}").exists()
        assert not (tmp / f"shipper-{run}").exists()
    assert not (tmp / "provider.pem").exists()
    for party in ("provider", "bureau"):  # no reader, no issuer: no output folder left
        assert not (Path(world[f"{party}_home"]) / "outbox").exists()
    assert sorted(p.name for p in Path(world["bureau_home"]).iterdir()) == [
        "config.toml",
        "hsm",
        "party",
        "secrets",
    ]  # no peer was registered by a refused `party add`


def test_every_command_has_a_failure_row() -> None:
    """A new command needs a row in tests/support/cli_failures.py (and every row a command)."""
    commands = dict(leaf_commands(cli))
    covered = {case.command for case in CASES}
    assert sorted(set(commands) - covered) == [], "commands without a failure row"
    assert sorted(covered - set(commands)) == [], "rows for commands that do not exist"


def test_every_command_takes_json() -> None:
    """--json everywhere, except the long-running services docs/cli.md lists."""
    exempt = json_exempt_commands()
    missing = [path for path, command in leaf_commands(cli) if not takes_json(command)]
    assert sorted(set(missing) - exempt) == []
    assert sorted(exempt - set(missing)) == [], "docs/cli.md exempts a command that has --json"


def test_exit_code_survives_the_entry_point(
    world: dict[str, str], none_env: dict[str, str]
) -> None:
    """Success is 0, a usage error 2, --help 0, from the installed executable."""
    assert run_sealcard(["--help"], none_env).code == 0
    assert run_sealcard(["--version"], none_env).code == 0
    done = run_sealcard(["issuer", "status", "--home", world["home"], "--json"], none_env)
    assert done.code == 0 and done.stderr == ""
    usage = run_sealcard(["card", "info", "--bogus", "--json"], none_env)
    assert usage.code == 2 and usage.stdout.startswith('{"ok": false, "error": "UsageError"')


def test_debug_logs_nothing_but_a_warning_without_a_card(none_env: dict[str, str]) -> None:
    """-v turns the log on with a warning; the failure stays one `error:` line after it."""
    run = run_sealcard(["card", "pin", "status", "-v"], none_env)  # after the command too
    lines = run.stderr.splitlines()
    assert run.code == 3
    assert lines[0].startswith("warning: debug log on")
    assert [line for line in lines if line.startswith("error: ")] == lines[-1:]


def test_sealcard_is_the_installed_console_script() -> None:
    """The table runs what users run: the console script, importing this tree's code."""
    env = child_env()
    probe = subprocess.run(
        ["python3", "-c", "import sealcard, sys; sys.stdout.write(sealcard.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.startswith(env["PYTHONPATH"] + os.sep)


@pytest.fixture
def quiet_logger() -> Iterator[None]:
    """-v adds a handler to the 'sealcard' logger of this process: take it away again."""
    logger = logging.getLogger("sealcard")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


def test_a_bug_is_one_line_exit_4_and_its_traceback_only_with_debug(
    monkeypatch: pytest.MonkeyPatch, quiet_logger: None
) -> None:
    from click_runner import separate_runner

    from sealcard.transport import pcsc

    def bug() -> list[str]:
        raise RuntimeError("an unexpected state")

    monkeypatch.setattr(pcsc, "list_readers", bug)
    plain = separate_runner().invoke(cli, ["readers", "--json"])
    assert plain.exit_code == 4
    assert plain.stderr.splitlines() == [
        "error: internal error (RuntimeError: an unexpected state); this is a bug: run the "
        "command again as `sealcard --debug ...` for the traceback and report it"
    ]
    assert json.loads(plain.stdout)["error"] == "InternalError"
    debug = separate_runner().invoke(cli, ["readers", "-v"])
    assert debug.exit_code == 4 and "Traceback" in debug.stderr


def test_ctrl_c_is_130(monkeypatch: pytest.MonkeyPatch) -> None:
    from click_runner import separate_runner

    from sealcard.transport import pcsc

    def interrupted() -> list[str]:
        raise KeyboardInterrupt

    monkeypatch.setattr(pcsc, "list_readers", interrupted)
    result = separate_runner().invoke(cli, ["readers"])
    assert result.exit_code == 130 and result.stderr == "error: aborted\n"
