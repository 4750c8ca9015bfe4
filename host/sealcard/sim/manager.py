"""Start, stop, reset and inspect simulated cards behind a private pcscd.

Layout of a run directory (default /run/sealcard-sim, or $SEALCARD_SIM_DIR):

    reader.conf.d/sealcard-sim-E   one vpcd entry per two cards (pcscd -c points here)
    drivers/libifdvpcd-E.so        a copy of the vpcd driver per entry
    pcscd.pid, simulator.pid       the two processes we started
    pcscd.log, simulator.log       their output
    control.sock                   the card JVM's control socket
    state.json                     what was started (cards, readers, ports, netns)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Final

from sealcard.errors import ConfigurationError
from sealcard.sim import processes
from sealcard.sim.config import (
    FRIENDLY_NAME,
    PORT_BASE,
    SLOTS_PER_ENTRY,
    SimulatorConfig,
    card_port,
    default_run_dir,
    reader_name,
    reader_names,
)
from sealcard.sim.control import send_command
from sealcard.sim.errors import (
    SimulatorAlreadyRunningError,
    SimulatorError,
    SimulatorNotRunningError,
    SimulatorStartError,
)
from sealcard.sim.readerconf import CONF_DIR_NAME, write_reader_conf
from sealcard.transport import pcsc
from sealcard.transport.errors import TransportError

Progress = Callable[[str], None]
"""Called with a short human sentence at each step of a slow operation (the CLI prints it)."""

PCSCD_PID_FILE: Final = "pcscd.pid"
JVM_PID_FILE: Final = "simulator.pid"
PCSCD_LOG: Final = "pcscd.log"
JVM_LOG: Final = "simulator.log"
CONTROL_SOCKET: Final = "control.sock"
STATE_FILE: Final = "state.json"
_LOCK_FILE: Final = "start.lock"

DEFAULT_TEAR_ABSENT_MS: Final = 1000
"""How long a torn card stays out: over two of pcscd's ~400 ms polls, so pcscd sees it leave."""

_STOP_TIMEOUT_S: Final = 5.0
_POLL_S: Final = 0.05
_NETNS_TIMEOUT_S: Final = 5.0
_LOG_TAIL_LINES: Final = 15
_JVM_OPTIONS: Final = ("-XX:+UseSerialGC",)
_READER_PATTERN: Final = re.compile(re.escape(FRIENDLY_NAME) + r" (\d+) 00 (0[01])")
_RUN_DIR_MODE: Final = 0o700


def _noop(_message: str) -> None:
    """Default progress callback: say nothing."""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class SimCard:
    """One simulated card as pcscd and the card JVM see it.

    present: pcscd reports a card in the reader (None when pcscd could not be asked).
    connected, powered, apdus, resets, tears, blank_resets, timing: the JVM's view (None when
    the JVM could not be asked); timing is the card timing model (`none`, `jcop4`).
    """

    index: int
    reader: str
    port: int
    present: bool | None = None
    connected: bool | None = None
    powered: bool | None = None
    apdus: int | None = None
    resets: int | None = None
    tears: int | None = None
    blank_resets: int | None = None
    timing: str | None = None


@dataclass(frozen=True)
class SimulatorStatus:
    """What runs in a run directory. `running` means pcscd and the card JVM are both alive."""

    running: bool
    run_dir: Path
    netns: bool | None = None
    pcscd_pid: int | None = None
    jvm_pid: int | None = None
    cards: tuple[SimCard, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def readers(self) -> list[str]:
        return [card.reader for card in self.cards]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["run_dir"] = str(self.run_dir)
        data["readers"] = self.readers
        return data


@dataclass(frozen=True)
class StartResult:
    """What `start` did: the status after start, foreign pcscd pids it stopped, seconds taken."""

    status: SimulatorStatus
    stopped_pcscd: tuple[int, ...] = ()
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.to_json(),
            "stopped_pcscd": list(self.stopped_pcscd),
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class StopResult:
    """What `stop` did: (name, pid) of each process stopped; those that needed SIGKILL."""

    was_running: bool
    stopped: tuple[tuple[str, int], ...] = ()
    killed: tuple[tuple[str, int], ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "was_running": self.was_running,
            "stopped": [{"name": n, "pid": p} for n, p in self.stopped],
            "killed": [{"name": n, "pid": p} for n, p in self.killed],
        }


# --------------------------------------------------------------------------- public API


def start(
    config: SimulatorConfig | None = None, *, progress: Progress | None = None
) -> StartResult:
    """Bring up `config.cards` simulated cards behind a private pcscd; return when pcscd sees all.

    Stops any pcscd already running (reported in the result: it would hold the PC/SC socket, and
    a system pcscd also loads /etc/reader.conf.d/vpcd, whose port 0x8C7B we use too). Raises
    SimulatorAlreadyRunningError if this run directory already has a running simulator,
    ConfigurationError for missing tools or files, SimulatorStartError if pcscd or the JVM fail.
    """
    config = config or SimulatorConfig()
    config = replace(config, run_dir=config.run_dir.resolve(), jar=config.jar.resolve())
    config.validate()
    config.run_dir.mkdir(parents=True, exist_ok=True)
    with _start_lock(config.run_dir):
        return _start_locked(config, progress or _noop)


@contextlib.contextmanager
def _start_lock(run_dir: Path) -> Iterator[None]:
    """Serialize concurrent starts in one run directory (the second then finds it running)."""
    with (run_dir / _LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _start_locked(config: SimulatorConfig, say: Progress) -> StartResult:
    tools = _find_tools(config)
    run_dir = config.run_dir
    if status(run_dir).running:
        raise SimulatorAlreadyRunningError(
            f"a simulator already runs in {run_dir}; `sealcard sim down` first"
        )
    began = time.monotonic()
    _clean_leftovers(run_dir)
    run_dir.chmod(_RUN_DIR_MODE)
    stopped = _stop_other_pcscd(say)
    if not config.netns:
        _check_ports_free(config.cards)
    conf_dir = write_reader_conf(run_dir, config.cards, config.driver)
    started: list[int] = []
    try:
        pcscd_pid = _launch_pcscd(config, tools, conf_dir, say)
        started.append(pcscd_pid)
        jvm_pid = _launch_jvm(config, tools, pcscd_pid, say)
        started.append(jvm_pid)
        _wait_for_control(run_dir, pcscd_pid, jvm_pid, config.ready_timeout_s)
        say(f"waiting for pcscd to see {config.cards} card(s)")
        wait_for_cards(config.readers, config.ready_timeout_s, run_dir=run_dir)
    except BaseException:
        for pid in reversed(started):
            processes.terminate(pid, _STOP_TIMEOUT_S)
        _remove_run_files(run_dir)
        raise
    _write_state(config)
    return StartResult(
        status=status(run_dir), stopped_pcscd=tuple(stopped), seconds=time.monotonic() - began
    )


def stop(run_dir: Path | None = None, *, progress: Progress | None = None) -> StopResult:
    """SIGTERM the card JVM and pcscd of this run directory and wait for both (SIGKILL after 5 s).

    Does nothing (was_running=False) when nothing runs. Does not restart a pcscd that `start`
    stopped.
    """
    run_dir = (run_dir or default_run_dir()).resolve()
    say = progress or _noop
    stopped: list[tuple[str, int]] = []
    killed: list[tuple[str, int]] = []
    for name, pid_file in (("simulator", JVM_PID_FILE), ("pcscd", PCSCD_PID_FILE)):
        pid = _our_pid(run_dir, pid_file)
        if pid is None:
            continue
        say(f"stopping {name} (pid {pid})")
        if not processes.terminate(pid, _STOP_TIMEOUT_S):
            killed.append((name, pid))
        stopped.append((name, pid))
    _remove_run_files(run_dir)
    return StopResult(was_running=bool(stopped), stopped=tuple(stopped), killed=tuple(killed))


def status(run_dir: Path | None = None) -> SimulatorStatus:
    """What runs in `run_dir`, with every card's reader, presence and counters when reachable."""
    run_dir = (run_dir or default_run_dir()).resolve()
    state = _read_state(run_dir)
    pcscd_pid = _our_pid(run_dir, PCSCD_PID_FILE)
    jvm_pid = _our_pid(run_dir, JVM_PID_FILE)
    problems: list[str] = []
    if state is None:
        if pcscd_pid is not None or jvm_pid is not None:
            problems.append("processes run but state.json is missing (start did not finish)")
        return SimulatorStatus(
            running=False,
            run_dir=run_dir,
            pcscd_pid=pcscd_pid,
            jvm_pid=jvm_pid,
            problems=tuple(problems),
        )
    if pcscd_pid is None:
        problems.append("pcscd is not running")
    if jvm_pid is None:
        problems.append("the card JVM is not running")
    cards_count = int(state["cards"])
    jvm_cards = _jvm_cards(run_dir, problems) if jvm_pid is not None else {}
    present = _presence(reader_names(cards_count), problems) if pcscd_pid is not None else {}
    cards = tuple(
        SimCard(
            index=i,
            reader=reader_name(i),
            port=card_port(i),
            present=present.get(reader_name(i)),
            **jvm_cards.get(i, {}),
        )
        for i in range(cards_count)
    )
    return SimulatorStatus(
        running=pcscd_pid is not None and jvm_pid is not None,
        run_dir=run_dir,
        netns=bool(state.get("netns")),
        pcscd_pid=pcscd_pid,
        jvm_pid=jvm_pid,
        cards=cards,
        problems=tuple(problems),
    )


def reset_card(index: int, run_dir: Path | None = None) -> None:
    """Replace card `index` by a blank one (fresh jCardSim runtime, applet newly installed).

    The card stays in its reader; a host connection to it stays open but finds the card reset
    (no applet selected), as after a power cycle.
    """
    run_dir = _running_dir(run_dir, index)
    send_command(run_dir / CONTROL_SOCKET, f"reset-blank {index}")


def tear_card(
    index: int,
    absent_ms: int = DEFAULT_TEAR_ABSENT_MS,
    *,
    wait: bool = True,
    timeout_s: float = 10.0,
    run_dir: Path | None = None,
) -> None:
    """Pull card `index` out of its reader for `absent_ms`, then put it back.

    Power is lost (RAM cleared, applet deselected); connections to it fail (card removed) and the
    host must reconnect. With `wait`, return once pcscd sees the card again.
    """
    run_dir = _running_dir(run_dir, index)
    send_command(run_dir / CONTROL_SOCKET, f"tear {index} {absent_ms}")
    if wait:
        name = reader_name(index)
        _wait_until(
            lambda: not _has_card(name),
            (absent_ms / 1000.0) + 1.0,
            raise_on_timeout=False,
        )
        wait_for_cards([name], timeout_s, run_dir=run_dir)


def wait_for_cards(
    readers: Sequence[str], timeout_s: float, *, run_dir: Path | None = None
) -> None:
    """Wait until pcscd lists every reader in `readers` with a card in it.

    Raises SimulatorStartError (naming the missing readers) after `timeout_s`.
    """
    wanted = list(readers)
    missing: list[str] = list(wanted)

    def all_present() -> bool:
        nonlocal missing
        try:
            attached = set(pcsc.list_readers())
            missing = [r for r in wanted if r not in attached or not pcsc.reader_has_card(r)]
        except TransportError:
            missing = list(wanted)
        return not missing

    if not _wait_until(all_present, timeout_s, raise_on_timeout=False):
        where = run_dir or default_run_dir()
        raise SimulatorStartError(
            f"pcscd does not show a card in {', '.join(missing)} after {timeout_s:.0f} s"
            + _log_tails(where)
        )


def card_index(reader: str) -> int:
    """The card number behind a simulator reader name (ValueError for other readers)."""
    match = _READER_PATTERN.fullmatch(reader)
    if match is None:
        raise ValueError(f"{reader!r} is not a simulated card's reader")
    return int(match.group(1)) * SLOTS_PER_ENTRY + int(match.group(2))


# --------------------------------------------------------------------------- steps of start


@dataclass(frozen=True)
class _Tools:
    java: str
    pcscd: str
    unshare: str | None
    nsenter: str | None
    ip: str | None


def _which(name: str, why: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ConfigurationError(f"{name} not found on PATH ({why})")
    return found


def _find_tools(config: SimulatorConfig) -> _Tools:
    java = _which(config.java, "install a JDK 17+")
    pcscd = _which(config.pcscd, "install Debian's pcscd")
    if not config.netns:
        return _Tools(java, pcscd, None, None, None)
    return _Tools(
        java,
        pcscd,
        _which("unshare", "util-linux, for the private network namespace"),
        _which("nsenter", "util-linux, for the private network namespace"),
        _which("ip", "iproute2, to bring loopback up in the namespace"),
    )


def _stop_other_pcscd(say: Progress) -> list[int]:
    stopped: list[int] = []
    for pid in processes.find_by_name("pcscd"):
        say(
            f"stopping the pcscd already running (pid {pid}); "
            "it is not restarted by `sealcard sim down`"
        )
        processes.terminate(pid, _STOP_TIMEOUT_S)
        stopped.append(pid)
    return stopped


def _check_ports_free(cards: int) -> None:
    """Without a namespace vpcd binds 0.0.0.0:port; fail early if a port is taken."""
    for index in range(cards):
        port = card_port(index)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("0.0.0.0", port))  # noqa: S104 - probing what vpcd will bind
            except OSError as exc:
                raise SimulatorStartError(
                    f"TCP port {port} (card {index}) is in use: {exc.strerror}"
                ) from exc


def _launch(argv: list[str], log_path: Path) -> int:
    with log_path.open("ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv of resolved tool paths, no shell
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    return proc.pid


def _launch_pcscd(config: SimulatorConfig, tools: _Tools, conf_dir: Path, say: Progress) -> int:
    argv = [tools.pcscd, "--foreground", "--config", str(conf_dir)]
    if config.netns:
        assert tools.unshare is not None
        argv = [tools.unshare, "--net", "--", *argv]
        say("starting pcscd in a private network namespace (vpcd's ports stay off the network)")
    else:
        say("starting pcscd (vpcd's ports listen on every interface)")
    pid = _launch(argv, config.run_dir / PCSCD_LOG)
    processes.write_pid(config.run_dir / PCSCD_PID_FILE, pid)
    if config.netns:
        _bring_up_loopback(pid, tools)
    return pid


def _netns_link(pid: int | str) -> str:
    try:
        return str(Path(f"/proc/{pid}/ns/net").readlink())
    except OSError:
        return ""


def _bring_up_loopback(pid: int, tools: _Tools) -> None:
    assert tools.nsenter is not None and tools.ip is not None
    own = _netns_link("self")
    if not _wait_until(
        lambda: _netns_link(pid) not in ("", own), _NETNS_TIMEOUT_S, raise_on_timeout=False
    ):
        raise SimulatorStartError(f"pcscd (pid {pid}) did not enter its own network namespace")
    result = subprocess.run(  # noqa: S603 - fixed argv of resolved tool paths, no shell
        [tools.nsenter, f"--net=/proc/{pid}/ns/net", "--", tools.ip, "link", "set", "lo", "up"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SimulatorStartError(f"cannot bring loopback up: {result.stderr.strip()}")


def _launch_jvm(config: SimulatorConfig, tools: _Tools, pcscd_pid: int, say: Progress) -> int:
    argv = [
        tools.java,
        *_JVM_OPTIONS,
        "-jar",
        str(config.jar),
        "--cards",
        str(config.cards),
        "--control",
        str(config.run_dir / CONTROL_SOCKET),
        "--port-base",
        str(PORT_BASE),
        "--applet-class",
        config.applet_class,
        "--applet-aid",
        config.applet_aid.hex().upper(),
        "--package-aid",
        config.package_aid.hex().upper(),
    ]
    if config.applet_classpath:
        argv += ["--applet-classpath", ":".join(str(p) for p in config.applet_classpath)]
    argv += ["--timing", config.timing]
    if config.netns:
        assert tools.nsenter is not None
        argv = [tools.nsenter, f"--net=/proc/{pcscd_pid}/ns/net", "--", *argv]
    say(f"starting {config.cards} simulated card(s) ({config.applet_class}) in one JVM")
    pid = _launch(argv, config.run_dir / JVM_LOG)
    processes.write_pid(config.run_dir / JVM_PID_FILE, pid)
    return pid


def _wait_for_control(run_dir: Path, pcscd_pid: int, jvm_pid: int, timeout_s: float) -> None:
    def ready() -> bool:
        for name, pid in (("pcscd", pcscd_pid), ("the card JVM", jvm_pid)):
            if not processes.pid_alive(pid):
                raise SimulatorStartError(f"{name} exited during start" + _log_tails(run_dir))
        try:
            send_command(run_dir / CONTROL_SOCKET, "status")
        except SimulatorNotRunningError:
            return False
        return True

    if not _wait_until(ready, timeout_s, raise_on_timeout=False):
        raise SimulatorStartError(
            f"the card JVM did not open its control socket in {timeout_s:.0f} s"
            + _log_tails(run_dir)
        )


# --------------------------------------------------------------------------- helpers


def _wait_until(check: Callable[[], bool], timeout_s: float, *, raise_on_timeout: bool) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            if raise_on_timeout:
                raise SimulatorError(f"gave up after {timeout_s:.1f} s")
            return False
        time.sleep(_POLL_S)


def _has_card(reader: str) -> bool:
    try:
        return pcsc.reader_has_card(reader)
    except TransportError:
        return False


def _our_pid(run_dir: Path, pid_file: str) -> int | None:
    """The pid in run_dir/pid_file if it is alive and still the process we started.

    The process must name this run directory's conf dir (pcscd) or control socket (JVM) in its
    argv, so a recycled pid is never taken for ours.
    """
    pid = processes.read_pid(run_dir / pid_file)
    if pid is None or not processes.pid_alive(pid):
        return None
    mark = run_dir / (CONF_DIR_NAME if pid_file == PCSCD_PID_FILE else CONTROL_SOCKET)
    return pid if str(mark) in processes.cmdline(pid) else None


def _running_dir(run_dir: Path | None, index: int) -> Path:
    run_dir = (run_dir or default_run_dir()).resolve()
    state = _read_state(run_dir)
    if state is None or _our_pid(run_dir, JVM_PID_FILE) is None:
        raise SimulatorNotRunningError(f"no simulator runs in {run_dir}: `sealcard sim up` first")
    cards = int(state["cards"])
    if not 0 <= index < cards:
        raise SimulatorError(f"no card {index}: the simulator has cards 0..{cards - 1}")
    return run_dir


def _jvm_cards(run_dir: Path, problems: list[str]) -> dict[int, dict[str, Any]]:
    try:
        answer = json.loads(send_command(run_dir / CONTROL_SOCKET, "status"))
    except (SimulatorError, ValueError) as exc:
        problems.append(f"the card JVM did not answer: {exc}")
        return {}
    keys = ("connected", "powered", "apdus", "resets", "tears", "blank_resets", "timing")
    return {int(card["index"]): {k: card.get(k) for k in keys} for card in answer["cards"]}


def _presence(readers: list[str], problems: list[str]) -> dict[str, bool]:
    try:
        attached = set(pcsc.list_readers())
        return {r: r in attached and pcsc.reader_has_card(r) for r in readers}
    except TransportError as exc:
        problems.append(f"pcscd did not answer: {exc}")
        return {}


def _write_state(config: SimulatorConfig) -> None:
    state = {
        "cards": config.cards,
        "netns": config.netns,
        "readers": config.readers,
        "ports": [card_port(i) for i in range(config.cards)],
        "jar": str(config.jar),
        "applet_class": config.applet_class,
        "applet_aid": config.applet_aid.hex().upper(),
        "timing": config.timing,
    }
    (config.run_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")


def _read_state(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((run_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "cards" in data else None


def _remove_run_files(run_dir: Path) -> None:
    for name in (PCSCD_PID_FILE, JVM_PID_FILE, CONTROL_SOCKET, STATE_FILE):
        (run_dir / name).unlink(missing_ok=True)


def _clean_leftovers(run_dir: Path) -> None:
    """Stop what a half-finished earlier run left behind in this run directory."""
    for pid_file in (JVM_PID_FILE, PCSCD_PID_FILE):
        pid = _our_pid(run_dir, pid_file)
        if pid is not None:
            processes.terminate(pid, _STOP_TIMEOUT_S)
    _remove_run_files(run_dir)
    for log in (PCSCD_LOG, JVM_LOG):
        (run_dir / log).unlink(missing_ok=True)


def _tail(path: Path) -> str:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            lines = _last_lines(handle)
    except OSError:
        return ""
    return "".join(lines)


def _last_lines(handle: IO[str]) -> list[str]:
    return handle.readlines()[-_LOG_TAIL_LINES:]


def _log_tails(run_dir: Path) -> str:
    parts = []
    for name in (PCSCD_LOG, JVM_LOG):
        tail = _tail(run_dir / name).rstrip()
        if tail:
            parts.append(f"\n--- last lines of {run_dir / name} ---\n{tail}")
    return "".join(parts)
