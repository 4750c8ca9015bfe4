"""`sealcard sim`: simulated sealcard cards behind pcscd (jCardSim + vpcd), for tests and demos."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from sealcard import sim as simulation
from sealcard.cli.common import (
    JSON_HELP_ONE_OBJECT,
    emit,
    json_option,
    reader_option,
    resolve_reader,
)
from sealcard.sim import config as sim_config

F = TypeVar("F", bound=Callable[..., Any])


def _run_dir_option(func: F) -> F:
    return click.option(
        "--run-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        envvar=sim_config.RUN_DIR_ENV,
        show_envvar=True,
        help=f"Where pid files, logs, reader.conf.d and the control socket live "
        f"(default: {sim_config.DEFAULT_RUN_DIR}).",
    )(func)


_json_option = json_option(JSON_HELP_ONE_OBJECT)


def _emit(as_json: bool, payload: dict[str, Any], text: str) -> None:
    emit(as_json, payload, text, sort_keys=True)


def _progress(message: str) -> None:
    click.echo(f"... {message}", err=True)


def _yes_no(value: bool | None) -> str:
    return "?" if value is None else ("yes" if value else "no")


def _status_text(status: simulation.SimulatorStatus) -> str:
    if not status.running and not status.cards:
        lines = [f"no simulator runs in {status.run_dir}"]
    else:
        isolation = "private network namespace" if status.netns else "host network"
        lines = [
            f"simulator {'running' if status.running else 'NOT running'} in {status.run_dir} "
            f"(pcscd pid {status.pcscd_pid}, card JVM pid {status.jvm_pid}, {isolation})",
            f"{'card':>4}  {'reader':<22} {'port':>5}  {'card in':<7} {'apdus':>7} "
            f"{'tears':>5} {'blanked':>7}  timing",
        ]
        for card in status.cards:
            lines.append(
                f"{card.index:>4}  {card.reader:<22} {card.port:>5}  "
                f"{_yes_no(card.present):<7} {_count(card.apdus):>7} {_count(card.tears):>5} "
                f"{_count(card.blank_resets):>7}  {card.timing or '?'}"
            )
    lines += [f"problem: {p}" for p in status.problems]
    return "\n".join(lines)


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


@click.group(name="sim")
def sim() -> None:
    """Simulated sealcard cards that look to every PC/SC program like cards in real readers.

    \b
    N jCardSim cards run in one JVM with the applet installed; each connects to
    vsmartcard's vpcd driver inside a private pcscd, so it appears as a reader
    "Sealcard Sim E 00 0S" (card 0: "Sealcard Sim 0 00 00", card 1: "... 0 00 01",
    card 2: "Sealcard Sim 1 00 00", ...). Needs root (pcscd does), a JDK, pcscd,
    vsmartcard-vpcd, and build/sealcard-sim.jar (`ant sim-jar`).

    \b
      sealcard sim up --cards 4     # stops any running pcscd, starts ours + 4 cards
      sealcard readers              # the 4 readers, each with a blank card
      sealcard sim reset --card 2   # card 2 back to blank (as if a fresh card went in)
      sealcard sim tear --card 1    # pull card 1 out for a second and put it back
      sealcard sim status
      sealcard sim down

    See docs/simulator.md.
    """


@sim.command(name="up")
@click.option(
    "--cards",
    type=click.IntRange(1, simulation.MAX_CARDS),
    default=simulation.DEFAULT_CARDS,
    show_default=True,
    help=f"How many cards (1..{simulation.MAX_CARDS}: pcscd serves 16 readers at most; with "
    "16 no real reader fits next to them).",
)
@_run_dir_option
@click.option(
    "--netns/--no-netns",
    default=True,
    show_default=True,
    help="Run pcscd and the cards in a private network namespace. vpcd listens on every "
    "interface; --no-netns exposes its TCP ports (0x8C7B + card number) to the network.",
)
@click.option(
    "--jar",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    envvar=sim_config.JAR_ENV,
    show_envvar=True,
    help="The simulator jar (default: build/sealcard-sim.jar).",
)
@click.option(
    "--applet-class",
    default=sim_config.DEFAULT_APPLET_CLASS,
    show_default=True,
    help="Applet class to install on every card (for testing other applets).",
)
@click.option(
    "--applet-classpath",
    type=click.Path(exists=True, path_type=Path),
    multiple=True,
    help="Extra jar or class directory holding --applet-class (repeatable).",
)
@click.option(
    "--timing",
    type=click.Choice(sim_config.TIMINGS),
    default="none",
    show_default=True,
    help="How long each command takes: none (as fast as jCardSim) or jcop4 (as an NXP JCOP 4 "
    "J3R180 would take: JCAlgTest's published timings, RSA-2048 key generation drawn around "
    "5.2 s; see docs/performance.md). For throughput measured as a real line would see it.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1.0),
    default=sim_config.DEFAULT_READY_TIMEOUT_S,
    show_default=True,
    help="Seconds to wait until pcscd sees every card.",
)
@_json_option
def up(
    cards: int,
    run_dir: Path | None,
    netns: bool,
    jar: Path | None,
    applet_class: str,
    applet_classpath: tuple[Path, ...],
    timing: str,
    timeout: float,
    as_json: bool,
) -> None:
    """Start pcscd and N simulated cards; return once pcscd sees every card.

    Any pcscd already running is stopped first (it would own the PC/SC socket) and
    is not restarted by `sim down`: restart it yourself (e.g. `systemctl start pcscd`).
    """
    config = simulation.SimulatorConfig(
        cards=cards,
        run_dir=run_dir or simulation.default_run_dir(),
        netns=netns,
        jar=jar or simulation.default_jar(),
        applet_class=applet_class,
        applet_classpath=applet_classpath,
        ready_timeout_s=timeout,
        timing=timing,
    )
    result = simulation.start(config, progress=_progress)
    text = [f"stopped the pcscd that was running (pid {pid})" for pid in result.stopped_pcscd]
    text.append(
        f"{cards} simulated card(s) up in {result.seconds:.2f} s (timing: {timing}); readers: "
        + ", ".join(result.status.readers)
    )
    _emit(as_json, result.to_json(), "\n".join(text))


@sim.command(name="down")
@_run_dir_option
@_json_option
def down(run_dir: Path | None, as_json: bool) -> None:
    """Stop the simulated cards and their pcscd (SIGTERM, then SIGKILL after 5 s)."""
    result = simulation.stop(run_dir, progress=_progress)
    if not result.was_running:
        text = "no simulator was running"
    else:
        text = "stopped " + ", ".join(f"{name} (pid {pid})" for name, pid in result.stopped)
        if result.killed:
            text += "; needed SIGKILL: " + ", ".join(n for n, _ in result.killed)
    _emit(as_json, result.to_json(), text)


def _pick_card(card: int | None, reader: str | None, run_dir: Path | None) -> int:
    """The card number named by --card or --reader, in a simulator that runs (checked before
    anything is said or done)."""
    if (card is None) == (reader is None):
        raise click.UsageError("name one card: --card N or --reader NAME")
    current = simulation.status(run_dir)
    if not current.running:
        raise simulation.SimulatorNotRunningError(
            f"no simulator runs in {current.run_dir}: `sealcard sim up` first"
        )
    if reader is not None:
        return simulation.card_index(resolve_reader(reader, current.readers))
    assert card is not None
    if card >= len(current.cards):
        raise click.BadParameter(
            f"no card {card}: the simulator has cards 0..{len(current.cards) - 1}",
            param_hint="--card",
        )
    return card


_card_option = click.option(
    "--card", type=click.IntRange(min=0), default=None, help="Card number (0 = first)."
)
_reader_option = reader_option(
    'Or its reader: the name (e.g. "Sealcard Sim 0 00 01"), a unique part of it, or its number.'
)


@sim.command(name="reset")
@_card_option
@_reader_option
@_run_dir_option
@_json_option
def reset(card: int | None, reader: str | None, run_dir: Path | None, as_json: bool) -> None:
    """Put a blank card in place of card N: all its data gone, the applet newly installed.

    The card stays in its reader; open connections find it reset (no applet selected).
    """
    index = _pick_card(card, reader, run_dir)
    simulation.reset_card(index, run_dir)
    _emit(
        as_json,
        {"card": index, "reader": simulation.reader_name(index)},
        f"card {index} ({simulation.reader_name(index)}) is blank",
    )


@sim.command(name="tear")
@_card_option
@_reader_option
@click.option(
    "--absent-ms",
    type=click.IntRange(0, 60_000),
    default=simulation.DEFAULT_TEAR_ABSENT_MS,
    show_default=True,
    help="How long the card stays out (pcscd polls readers every ~400 ms).",
)
@_run_dir_option
@_json_option
def tear(
    card: int | None, reader: str | None, absent_ms: int, run_dir: Path | None, as_json: bool
) -> None:
    """Pull card N out of its reader and put it back: power lost, RAM cleared, applet deselected.

    Data written by completed commands stays (it is EEPROM). Returns once pcscd sees the card again.
    """
    index = _pick_card(card, reader, run_dir)
    _progress(f"pulling card {index} out for {absent_ms} ms")
    simulation.tear_card(index, absent_ms, run_dir=run_dir)
    _emit(
        as_json,
        {"card": index, "reader": simulation.reader_name(index), "absent_ms": absent_ms},
        f"card {index} ({simulation.reader_name(index)}) was pulled out and is back",
    )


@sim.command(name="status")
@_run_dir_option
@_json_option
def status(run_dir: Path | None, as_json: bool) -> None:
    """Show whether the simulator runs, and each card's reader, presence and APDU count."""
    result = simulation.status(run_dir)
    _emit(as_json, result.to_json(), _status_text(result))
