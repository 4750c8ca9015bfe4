"""The private reader.conf.d that gives pcscd one vpcd entry per two simulated cards."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Final

from sealcard.sim.config import FRIENDLY_NAME, entry_count, entry_port

CONF_DIR_NAME: Final = "reader.conf.d"
DRIVER_DIR_NAME: Final = "drivers"
ENTRY_PREFIX: Final = "sealcard-sim-"
_DRIVER_MODE: Final = 0o644
_CONF_MODE: Final = 0o644


def entry_text(entry: int, driver_copy: Path) -> str:
    """One reader.conf entry: its own driver copy, name and port (vpcd listens on port and port+1).

    Each entry needs its own copy of libifdvpcd.so: the driver keeps its per-slot state in static
    memory, so two entries loading the same file overwrite each other.
    """
    port = entry_port(entry)
    return (
        f'FRIENDLYNAME "{FRIENDLY_NAME} {entry}"\n'
        f"DEVICENAME /dev/null:0x{port:04X}\n"
        f"LIBPATH {driver_copy}\n"
        f"CHANNELID 0x{port:04X}\n"
    )


def write_reader_conf(run_dir: Path, cards: int, driver: Path) -> Path:
    """Write run_dir/reader.conf.d (and run_dir/drivers) for `cards` cards; return the conf dir.

    Old entries of an earlier run are removed first. /etc/reader.conf.d is never touched.
    """
    conf_dir = run_dir / CONF_DIR_NAME
    driver_dir = run_dir / DRIVER_DIR_NAME
    conf_dir.mkdir(parents=True, exist_ok=True)
    driver_dir.mkdir(parents=True, exist_ok=True)
    for old in conf_dir.glob(ENTRY_PREFIX + "*"):
        old.unlink()
    for old in driver_dir.glob("libifdvpcd-*.so"):
        old.unlink()
    source = driver.resolve()
    for entry in range(entry_count(cards)):
        copy = driver_dir / f"libifdvpcd-{entry}.so"
        shutil.copyfile(source, copy)
        copy.chmod(_DRIVER_MODE)
        conf = conf_dir / f"{ENTRY_PREFIX}{entry}"
        conf.write_text(entry_text(entry, copy), encoding="ascii")
        conf.chmod(_CONF_MODE)
    return conf_dir
