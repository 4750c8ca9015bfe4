"""The issuer HSM service built like the HSM's trusted part (issue 11): started as root it runs
as its own Unix user, with its memory locked, no core dumps and no ptrace; it refuses to start
as root, as another user, or with a home or socket that others could change or read; it logs
every request with its id and never its content.

Every HSM step runs in a child process (the CLI, the service, a helper), so this module never
loads the SoftHSM configuration of its own home into the test process."""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sealcard.hsm.hardening import HardeningError, ServiceAccount, require_own_user, wipe

pytestmark = pytest.mark.hsm

SERVICE_USER = "sealcard-hsm"
CAP_IPC_LOCK = 1 << 14
PTRACE_ATTACH = 16
SECRET_NAME = "Philippa Zwetschgendatschi"  # must never reach the log


def cli(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sealcard.cli.main", "issuer", *args, "--home", str(home)],
        input=stdin,
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
def account() -> ServiceAccount:
    if os.geteuid() != 0:
        pytest.skip("the service's privilege drop is tested as root (as CI runs)")
    return ServiceAccount.named(SERVICE_USER)


@pytest.fixture(scope="module")
def home(service_dirs: Callable[[str], Path], account: ServiceAccount) -> Iterator[Path]:
    if shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")
    root = service_dirs("hardening") / "home"
    ok(root, "init")
    ok(root, "hsm", "init")
    yield root
    cli(root, "hsm", "stop")


@pytest.fixture
def running(home: Path) -> Iterator[int]:
    """The service started by `sealcard issuer hsm start` as root; yields its pid."""
    started = ok(home, "hsm", "start")
    try:
        yield int(str(started["pid"]))
    finally:
        cli(home, "hsm", "stop")


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _as_user(uid: int, gid: int, action: Callable[[], int]) -> int:
    """Run ``action`` in a forked child that switched to uid/gid; its return is the exit code."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            code = action()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_started_as_root_it_runs_as_its_own_user_locked_and_undumpable(
    home: Path, running: int, account: ServiceAccount
) -> None:
    workers = _children(running)
    assert len(workers) >= 1
    for pid in [running, *workers]:
        status = _status(pid)
        assert status["Uid"].split() == [str(account.uid)] * 4  # real, effective, saved, fs
        assert status["Gid"].split() == [str(account.gid)] * 4
        assert int(status["CapEff"], 16) == CAP_IPC_LOCK  # nothing but locking its memory
        assert int(status["CapPrm"], 16) == CAP_IPC_LOCK
        locked_kb = int(status["VmLck"].split()[0])
        assert locked_kb > 0.8 * int(status["VmRSS"].split()[0])  # mlockall: current pages
        limits = Path(f"/proc/{pid}/limits").read_text()
        assert re.search(r"Max core file size\s+0\s+0", limits)
        # not dumpable: its /proc files belong to root, not to the user it runs as
        assert os.stat(f"/proc/{pid}/environ").st_uid == 0
    socket_path = home / "run" / "issuer-hsm.sock"
    info = socket_path.stat()
    assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == account.uid


def test_a_process_of_the_same_user_cannot_ptrace_it(running: int, account: ServiceAccount) -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    errno_eperm = 1

    def attach() -> int:
        if libc.ptrace(PTRACE_ATTACH, running, None, None) == 0:
            return 0
        return 10 + ctypes.get_errno()

    assert _as_user(account.uid, account.gid, attach) == 10 + errno_eperm


def test_it_never_runs_as_root_nor_as_another_user(account: ServiceAccount) -> None:
    with pytest.raises(HardeningError) as info:
        require_own_user(account)  # this test runs as root
    assert info.value.reason == "root"
    nobody = pwd.getpwnam("nobody")

    def check() -> int:
        try:
            require_own_user(account)
        except HardeningError as exc:
            return 3 if exc.reason == "wrong-user" and "'nobody'" in str(exc) else 4
        return 0

    assert _as_user(nobody.pw_uid, nobody.pw_gid, check) == 3


def _set_option(home: Path, key: str, value: str) -> str:
    config = home / "config.toml"
    before = config.read_text()
    text = re.sub(rf"^{key} = .*$", f'{key} = "{value}"', before, flags=re.M)
    config.write_text(text)
    return before


@pytest.mark.parametrize(
    ("user", "words"), [("root", "must not be root"), ("sealcard-no-such-user", "no Unix user")]
)
def test_it_refuses_a_service_user_that_is_root_or_missing(
    home: Path, user: str, words: str
) -> None:
    before = _set_option(home, "service_user", user)
    try:
        result = cli(home, "hsm", "start")
    finally:
        (home / "config.toml").write_text(before)
    assert result.returncode == 2  # a setting that is wrong (docs/cli.md)
    assert words in result.stderr


@pytest.mark.parametrize(
    ("where", "mode", "words"),
    [
        ("run", 0o777, "(the socket's folder) is open to others"),
        ("run", 0o755, "(the socket's folder) is open to others"),
        (".", 0o777, "is writable by group or others"),
        ("config.toml", 0o666, "is writable by group or others"),
        ("hsm", 0o775, "is writable by group or others"),
        ("hsm/request-key.pem", 0o646, "is writable by group or others"),
        ("hsm/issuer-cert.pem", 0o664, "is writable by group or others"),
        ("hsm/softhsm2.conf", 0o666, "is writable by group or others"),
        ("secrets/sealcard-issuer.user-pin", 0o640, "is open to group or others"),
        ("TOKEN", 0o750, "is open to group or others"),
    ],
)
def test_it_refuses_loose_permissions(home: Path, where: str, mode: int, words: str) -> None:
    path = home if where == "." else home / where
    if where == "TOKEN":
        path = next(p for p in (home / "hsm" / "tokens").iterdir() if p.stat().st_uid != 0)
    before = stat.S_IMODE(path.stat().st_mode)
    path.chmod(mode)
    try:
        result = cli(home, "hsm", "start")
    finally:
        path.chmod(before)
    assert result.returncode == 2, result.stdout
    assert "refusing to start" in result.stderr and words in result.stderr
    assert str(path.resolve()) in result.stderr or str(path) in result.stderr
    assert not (home / "run" / "issuer-hsm.sock").exists()


def test_it_refuses_a_socket_path_it_does_not_own(home: Path) -> None:
    socket_path = home / "run" / "issuer-hsm.sock"
    for make in (lambda: socket_path.write_text("x"), lambda: socket_path.symlink_to("/etc")):
        make()
        try:
            result = subprocess.run(
                [sys.executable, "-m", "sealcard.hsm.issuer_service", "--home", str(home)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        finally:
            socket_path.unlink()
        assert result.returncode == 1
        assert "is not this service's old socket" in result.stderr


def test_a_socket_left_by_a_killed_service_is_replaced(home: Path) -> None:
    started = ok(home, "hsm", "start")
    pid = int(str(started["pid"]))
    os.kill(pid, signal.SIGKILL)
    for _ in range(200):  # until it is dead (a zombie or gone)
        if not Path(f"/proc/{pid}").exists() or _status(pid)["State"].startswith("Z"):
            break
        time.sleep(0.05)
    assert (home / "run" / "issuer-hsm.sock").exists()
    ok(home, "hsm", "start")
    assert ok(home, "hsm", "xpub")["xpub"]
    cli(home, "hsm", "stop")


_SEND = """
import sys
from pathlib import Path
from sealcard.hsm import protocol
from sealcard.hsm.config import load_settings
from sealcard.hsm.issuer_client import IssuerHsmClient
from sealcard.hsm.system_hsm import RequestSigner
from sealcard.hsm.token import Token
settings = load_settings(Path(sys.argv[1]))
token = Token.open(settings.system)
client = IssuerHsmClient.for_settings(settings, RequestSigner(token))
body = {"mailer_id": "log-check", "public_key_der": "bm90IGEga2V5"}
message = protocol.encode_request("register-mailer", body, client.signer.sign, client.service_key())
status, _ = client.send_raw(message)
print(protocol.claimed_request_id(message).hex(), status)
"""


def test_every_request_is_logged_with_its_id_and_never_its_content(
    home: Path, running: int
) -> None:
    sent = subprocess.run(
        [sys.executable, "-c", _SEND, str(home)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    request_id, status = sent.stdout.split()
    assert status == "1"  # refused: not a key
    ok(home, "user", "add", "--name", SECRET_NAME, "--address", "7 Secret Lane")
    ok(home, "pack", "import-fake", "--cards", "3", "--rsa-pool", "1")
    ok(home, "order", "--user", "1", "--count", "3", "--pin-source", "none")
    assert ok(home, "seal", "--chunk-size", "2")["sealed"] == 3
    log = (home / "run" / "issuer-hsm.log").read_text()
    line = next(x for x in log.splitlines() if request_id in x)
    assert "op=register-mailer status=refused reason=malformed" in line
    seals = [x for x in log.splitlines() if "op=seal-batch status=ok" in x]
    cards = sorted(int(re.search(r"cards=(\d+)", x).group(1)) for x in seals)  # type: ignore[union-attr]
    assert cards == [1, 2]  # two chunks, sealed at once (either may finish first)
    for request in re.findall(r"request (\S+) op=", log):
        assert re.fullmatch(r"[0-9a-f]{32}", request)
    for secret in (SECRET_NAME, "Secret Lane", "bm90IGEga2V5", "log-check"):
        assert secret not in log


def test_wipe_overwrites_the_buffers_it_is_given() -> None:
    data = bytearray(b"seed material")
    wipe(data)
    assert data == bytearray(len(b"seed material"))
    buffer = ctypes.create_string_buffer(b"more", 8)
    wipe(buffer)
    assert buffer.raw == bytes(8)
    view_of = bytearray(b"abcdef")
    wipe(memoryview(view_of)[2:4])
    assert view_of == bytearray(b"ab\x00\x00ef")


def test_root_hands_out_nothing_named_by_a_config_others_could_write(
    home: Path, tmp_path: Path
) -> None:
    """Started as root, the service changes owners only inside its home, and only after it
    checked that nobody else could have rewritten the config that names those paths."""
    bystander = tmp_path / "someone-elses-file"
    bystander.write_text("not the service's")
    before = _set_option(home, "pin_file", str(bystander))
    config = home / "config.toml"
    mode = stat.S_IMODE(config.stat().st_mode)
    try:
        config.chmod(0o666)  # as if anyone could have named that file
        loose = cli(home, "hsm", "start")
        config.chmod(mode)
        outside = cli(home, "hsm", "start")  # a trusted config naming a file outside
    finally:
        config.chmod(mode)
        config.write_text(before)
    assert loose.returncode == 2 and "config.toml is writable by group or others" in loose.stderr
    assert outside.returncode == 2
    assert bystander.stat().st_uid == 0  # never handed to the service user
    assert ok(home, "hsm", "start")["pid"]  # the home itself is fine again
    cli(home, "hsm", "stop")


CONNECT = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_UNIX)\n"
    "try:\n"
    "    s.connect(sys.argv[1])\n"
    "except OSError as e:\n"
    "    sys.exit(f'refused: {e.strerror}')\n"
    "print('connected')\n"
)


def _connect_as_nobody(socket_path: Path, *groups: str) -> subprocess.CompletedProcess[str]:
    """Debian's own Python as user nobody (not root), in `groups` only: what an issuer system
    that runs as another user can reach."""
    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", f"--groups={','.join(groups) or '65534'}",
         "/usr/bin/python3", "-c", CONNECT, str(socket_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_a_socket_group_lets_an_issuer_system_of_another_user_in(
    account: ServiceAccount, service_dirs: Callable[[str], Path]
) -> None:
    """`issuer hsm init --socket-group G`: the socket's folder is the service user's and G's
    (0750), the socket 0660 in group G; a process of another user reaches it only in G."""
    if not Path("/usr/bin/python3").exists() or shutil.which("setpriv") is None:
        pytest.skip("needs Debian's /usr/bin/python3 and setpriv (util-linux)")
    home = service_dirs("socket-group") / "home"
    ok(home, "init")
    ok(home, "hsm", "init", "--socket-group", SERVICE_USER)
    run_dir = home / "run"
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o750
    assert run_dir.stat().st_gid == account.gid
    ok(home, "hsm", "start")
    try:
        socket_path = run_dir / "issuer-hsm.sock"
        assert stat.S_IMODE(socket_path.stat().st_mode) == 0o660
        assert socket_path.stat().st_gid == account.gid
        inside = _connect_as_nobody(socket_path, SERVICE_USER)
        assert inside.returncode == 0 and "connected" in inside.stdout, inside.stderr
        outside = _connect_as_nobody(socket_path)
        assert outside.returncode != 0 and "refused" in outside.stderr  # the check can fail
    finally:
        cli(home, "hsm", "stop")
