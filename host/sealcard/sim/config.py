"""What a simulator run looks like: card count, run directory, ports, reader names, defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from sealcard.card.constants import AID_APPLET, AID_PACKAGE
from sealcard.errors import ConfigurationError

PORT_BASE: Final = 0x8C7B
"""vpcd's default port; card i connects to PORT_BASE + i (entry i // 2, slot i % 2)."""

SLOTS_PER_ENTRY: Final = 2
"""Each vpcd reader.conf entry gives two readers, "NAME 00 00" and "NAME 00 01" (port, port+1)."""

MAX_CARDS: Final = 16
"""pcscd serves at most 16 readers (8 vpcd entries); sealcard asks pcscd about the readers it
names, never through pyscard's CardMonitor (which breaks at 16: it adds the PnP pseudo-reader),
so all 16 work. A real reader plugged in next to 16 simulated ones finds no free slot."""

DEFAULT_CARDS: Final = 4
TIMINGS: Final = ("none", "jcop4")
"""Card timing models of the simulator: `none` answers as fast as jCardSim; `jcop4` as late as
an NXP JCOP 4 J3R180 would (JCAlgTest's per-operation timings; docs/performance.md)."""
DEFAULT_RUN_DIR: Final = Path("/run/sealcard-sim")
RUN_DIR_ENV: Final = "SEALCARD_SIM_DIR"
JAR_ENV: Final = "SEALCARD_SIM_JAR"
JAR_NAME: Final = "sealcard-sim.jar"
DEFAULT_APPLET_CLASS: Final = "sealcard.applet.SealcardApplet"
VPCD_DRIVER: Final = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
FRIENDLY_NAME: Final = "Sealcard Sim"
DEFAULT_READY_TIMEOUT_S: Final = 30.0


def default_run_dir() -> Path:
    """$SEALCARD_SIM_DIR if set, else /run/sealcard-sim."""
    value = os.environ.get(RUN_DIR_ENV)
    return Path(value) if value else DEFAULT_RUN_DIR


def repo_root() -> Path:
    """The source tree this package runs from (host/sealcard/sim -> repository root)."""
    return Path(__file__).resolve().parents[3]


def default_jar() -> Path:
    """$SEALCARD_SIM_JAR if set, else build/sealcard-sim.jar of the source tree (`ant sim-jar`)."""
    value = os.environ.get(JAR_ENV)
    return Path(value) if value else repo_root() / "build" / JAR_NAME


def entry_count(cards: int) -> int:
    """vpcd reader.conf entries needed for `cards` cards."""
    return (cards + SLOTS_PER_ENTRY - 1) // SLOTS_PER_ENTRY


def card_port(index: int) -> int:
    """TCP port vpcd opens for card `index` (0-based)."""
    return PORT_BASE + index


def entry_port(entry: int) -> int:
    """The CHANNELID (first port) of reader.conf entry `entry`."""
    return PORT_BASE + SLOTS_PER_ENTRY * entry


def reader_name(index: int) -> str:
    """The PC/SC reader name of card `index`: "Sealcard Sim 0 00 00", "Sealcard Sim 0 00 01", ..."""
    entry, slot = divmod(index, SLOTS_PER_ENTRY)
    return f"{FRIENDLY_NAME} {entry} 00 {slot:02d}"


def reader_names(cards: int) -> list[str]:
    """Reader names of cards 0..cards-1, in card order."""
    return [reader_name(i) for i in range(cards)]


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything `start` needs. The defaults are sealcard's; tests may point at another applet.

    netns: run pcscd and the card JVM in their own network namespace (`unshare --net`, only
    loopback up), so vpcd's ports, which listen on every interface, are not on any network.
    The host code still reaches pcscd through its Unix socket. Needs root (as pcscd does).
    """

    cards: int = DEFAULT_CARDS
    run_dir: Path = field(default_factory=default_run_dir)
    netns: bool = True
    jar: Path = field(default_factory=default_jar)
    applet_class: str = DEFAULT_APPLET_CLASS
    applet_aid: bytes = AID_APPLET
    package_aid: bytes = AID_PACKAGE
    applet_classpath: tuple[Path, ...] = ()
    java: str = "java"
    pcscd: str = "pcscd"
    driver: Path = VPCD_DRIVER
    ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S
    timing: str = "none"

    def validate(self) -> None:
        """Raise ConfigurationError when a value cannot work."""
        if not 1 <= self.cards <= MAX_CARDS:
            raise ConfigurationError(
                f"cards must be 1..{MAX_CARDS} (pcscd serves at most 16 readers), got {self.cards}"
            )
        if self.timing not in TIMINGS:
            raise ConfigurationError(
                f"timing must be one of {', '.join(TIMINGS)}, got {self.timing!r}"
            )
        if not self.jar.is_file():
            raise ConfigurationError(
                f"simulator jar {self.jar} not found: build it with `ant sim-jar` "
                f"(or set {JAR_ENV})"
            )
        if not self.driver.is_file():
            raise ConfigurationError(
                f"vpcd driver {self.driver} not found: install Debian's vsmartcard-vpcd"
            )
        if self.ready_timeout_s <= 0:
            raise ConfigurationError("ready_timeout_s must be positive")

    @property
    def readers(self) -> list[str]:
        return reader_names(self.cards)
