"""Typed errors of the simulator manager."""

from __future__ import annotations

from sealcard.errors import SealcardError, UnavailableError


class SimulatorError(SealcardError):
    """Starting, stopping or driving the simulated cards failed."""


class SimulatorNotRunningError(SimulatorError, UnavailableError):
    """No simulator runs in that run directory (`sealcard sim up` first)."""


class SimulatorAlreadyRunningError(SimulatorError):
    """A simulator already runs in that run directory (`sealcard sim down` first)."""


class SimulatorStartError(SimulatorError):
    """pcscd or the card JVM did not come up; the message ends with their log's last lines."""
