"""The `Connection` protocol every transport implements, and a counting wrapper."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@runtime_checkable
class Connection(Protocol):
    """Anything that sends one encoded APDU and returns (response data, status word)."""

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        """Send `apdu`; return the answer without SW, and the SW as an int."""
        ...


@dataclass
class TrafficCount:
    """APDUs and bytes that crossed a connection (bytes include headers and SWs)."""

    apdus: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0

    @property
    def total_bytes(self) -> int:
        return self.bytes_sent + self.bytes_received


@dataclass
class CountingConnection:
    """Wraps a `Connection` and counts what passes through it (for measurements)."""

    inner: Connection
    count: TrafficCount = field(default_factory=TrafficCount)

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        data, sw = self.inner.send_and_receive(apdu)
        self.count.apdus += 1
        self.count.bytes_sent += len(apdu)
        self.count.bytes_received += len(data) + 2
        return data, sw

    def reset_count(self) -> TrafficCount:
        """Return the count so far and start a new one."""
        done, self.count = self.count, TrafficCount()
        return done
