"""sealcard.sim: simulated sealcard cards that look to the host like cards in PC/SC readers.

N jCardSim cards run in one JVM (simulator/, `sealcard.simulator.SimLauncher`); each speaks
vpcd's protocol to a private pcscd, so every card is a reader "Sealcard Sim E 00 0S" to
any PC/SC program. Used by `sealcard sim` and by the tests' `sim_cards` fixture:

    result = start(SimulatorConfig(cards=4))      # returns when pcscd sees all 4 cards
    status().readers                              # ["Sealcard Sim 0 00 00", ...]
    reset_card(1)                                 # card 1 back to blank
    tear_card(2)                                  # pull card 2 out and back in
    stop()

See docs/simulator.md.
"""

from sealcard.sim.config import (
    DEFAULT_CARDS,
    MAX_CARDS,
    PORT_BASE,
    SimulatorConfig,
    card_port,
    default_jar,
    default_run_dir,
    reader_name,
    reader_names,
)
from sealcard.sim.errors import (
    SimulatorAlreadyRunningError,
    SimulatorError,
    SimulatorNotRunningError,
    SimulatorStartError,
)
from sealcard.sim.manager import (
    DEFAULT_TEAR_ABSENT_MS,
    Progress,
    SimCard,
    SimulatorStatus,
    StartResult,
    StopResult,
    card_index,
    reset_card,
    start,
    status,
    stop,
    tear_card,
    wait_for_cards,
)

__all__ = [
    "DEFAULT_CARDS",
    "DEFAULT_TEAR_ABSENT_MS",
    "MAX_CARDS",
    "PORT_BASE",
    "Progress",
    "SimCard",
    "SimulatorAlreadyRunningError",
    "SimulatorConfig",
    "SimulatorError",
    "SimulatorNotRunningError",
    "SimulatorStartError",
    "SimulatorStatus",
    "StartResult",
    "StopResult",
    "card_index",
    "card_port",
    "default_jar",
    "default_run_dir",
    "reader_name",
    "reader_names",
    "reset_card",
    "start",
    "status",
    "stop",
    "tear_card",
    "wait_for_cards",
]
