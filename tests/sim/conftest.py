"""Fixtures for tests on simulated cards over real PC/SC (pcscd + vpcd + jCardSim).

API (for every test in tests/sim):

    sim_cards  (session fixture) -> SimCards, a list of SimCardHandle, one per card, in card
               order; at least MIN_CARDS (4) cards.
        sim_cards.readers             list[str], the PC/SC reader names, e.g. "Sealcard Sim 0 00 00"
        sim_cards.reset_blank(reader) replace that reader's card by a blank one (fresh applet
                                      install; open connections find it reset, no applet selected)
        sim_cards.tear(reader, absent_ms=1000)
                                      pull the card out and put it back; returns once pcscd sees
                                      it again (old connections then fail: reconnect)
        sim_cards.run_dir             the simulator's run directory
    SimCardHandle (each element):
        .index (0-based), .reader, .reset_blank(), .tear(absent_ms=1000)

Open a card with `sealcard.transport.pcsc.PcscConnection.open(card.reader)`. Cards are shared by
the whole session: a test that needs a known state calls `reset_blank` first, not after.

The fixture uses a simulator that already runs in the run directory ($SEALCARD_SIM_DIR, default
/run/sealcard-sim) if it has at least MIN_CARDS cards; otherwise it starts one with MIN_CARDS
cards (stopping any other pcscd; needs root) and stops it at the end of the session. When
build/sealcard-sim.jar is missing or older than a Java source, it runs `ant sim-jar` first.
Set SEALCARD_SIM_APPLET_CLASS and SEALCARD_SIM_APPLET_CLASSPATH to test the simulator with
another applet.

Also for every module (module scope: one CA and one issuer key per test file), unless the module
defines its own:
    ca      a provider root CA in a temporary folder
    issuer  an issuer key pair (EC P-256), whose public key step A injects

Several pytest sessions on one machine share one pcscd: start the simulator once
(`sealcard sim up --cards 4`) and every session reuses it and leaves it running.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from sealcard import sim
from sealcard.parties.provider import ProviderCA

MIN_CARDS = 4
APPLET_CLASS_ENV = "SEALCARD_SIM_APPLET_CLASS"
APPLET_CLASSPATH_ENV = "SEALCARD_SIM_APPLET_CLASSPATH"


@dataclass(frozen=True)
class SimCardHandle:
    """One simulated card: its number, its reader, and what a test may do to it."""

    index: int
    reader: str
    run_dir: Path

    def reset_blank(self) -> None:
        sim.reset_card(self.index, run_dir=self.run_dir)

    def tear(self, absent_ms: int = sim.DEFAULT_TEAR_ABSENT_MS) -> None:
        sim.tear_card(self.index, absent_ms, run_dir=self.run_dir)


class SimCards(list[SimCardHandle]):
    """The session's simulated cards (a list of SimCardHandle) plus by-reader helpers."""

    def __init__(self, run_dir: Path, readers: list[str]) -> None:
        super().__init__(SimCardHandle(i, name, run_dir) for i, name in enumerate(readers))
        self.run_dir = run_dir

    @property
    def readers(self) -> list[str]:
        return [card.reader for card in self]

    def card(self, reader: str) -> SimCardHandle:
        for card in self:
            if card.reader == reader:
                return card
        raise KeyError(f"{reader!r} is not one of the simulated readers {self.readers}")

    def reset_blank(self, reader: str) -> None:
        self.card(reader).reset_blank()

    def tear(self, reader: str, absent_ms: int = sim.DEFAULT_TEAR_ABSENT_MS) -> None:
        self.card(reader).tear(absent_ms)


def _stale(jar: Path) -> bool:
    """Missing, or older than a Java source of the applet or the simulator (default jar only)."""
    if not jar.is_file():
        return True
    root = sim.config.repo_root()
    if jar != root / "build" / sim.config.JAR_NAME:
        return False
    built = jar.stat().st_mtime
    sources = [*root.glob("applet/src/main/java/**/*.java"), *root.glob("simulator/src/**/*.java")]
    return any(src.stat().st_mtime > built for src in sources)


def _ensure_jar(jar: Path) -> None:
    if not _stale(jar):
        return
    build_xml = sim.config.repo_root() / "build.xml"
    ant = shutil.which("ant")
    if ant is None or not build_xml.is_file():
        pytest.fail(f"{jar} is missing and cannot be built here (needs ant and build.xml)")
    result = subprocess.run(
        [ant, "-q", "-f", str(build_xml), "sim-jar"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or _stale(jar):
        pytest.fail(f"`ant sim-jar` failed:\n{result.stdout}\n{result.stderr}")


def _config(run_dir: Path) -> sim.SimulatorConfig:
    classpath = os.environ.get(APPLET_CLASSPATH_ENV, "")
    return sim.SimulatorConfig(
        cards=MIN_CARDS,
        run_dir=run_dir,
        applet_class=os.environ.get(APPLET_CLASS_ENV, sim.config.DEFAULT_APPLET_CLASS),
        applet_classpath=tuple(Path(p) for p in classpath.split(":") if p),
    )


@pytest.fixture(scope="session")
def sim_cards() -> Iterator[SimCards]:
    run_dir = sim.default_run_dir()
    current = sim.status(run_dir)
    if current.running:
        if len(current.cards) < MIN_CARDS:
            pytest.fail(
                f"the simulator in {run_dir} has {len(current.cards)} cards, the sim tests need "
                f"{MIN_CARDS}: `sealcard sim down && sealcard sim up --cards {MIN_CARDS}`"
            )
        yield SimCards(run_dir, current.readers)
        return
    config = _config(run_dir)
    _ensure_jar(config.jar)
    try:
        result = sim.start(config)
    except sim.SimulatorAlreadyRunningError:  # another session started it meanwhile: share it
        yield SimCards(run_dir, sim.status(run_dir).readers)
        return
    try:
        yield SimCards(run_dir, result.status.readers)
    finally:
        sim.stop(run_dir)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ProviderCA:
    return ProviderCA.create(tmp_path_factory.mktemp("ca"), b"sim test passphrase")


@pytest.fixture(scope="module")
def issuer() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())
