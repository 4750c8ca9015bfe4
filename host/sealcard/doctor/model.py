"""What a doctor check says: its status, what it found, and how to fix what is missing."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Status(enum.Enum):
    """ok: ready; warn: works, but look; fail: the job cannot run here; skip: not checked
    (something it depends on failed first)."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


class Job(enum.Enum):
    """What the machine is meant for; each job has its own checks."""

    CARDS = "cards"  # provider, bureau, card holder: pcscd, readers, cards
    ISSUER = "issuer"  # the issuer system and its HSMs: home, database, PKCS#11, HSM service
    SIM = "sim"  # developers: simulated cards (Java, vpcd, the simulator jar)


@dataclass(frozen=True)
class Check:
    """One finding. ``fix`` tells a person what to do when the status is warn or fail."""

    job: Job
    name: str
    status: Status
    detail: str
    fix: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.job.value,
            "name": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "fix": self.fix,
            **({"data": self.data} if self.data else {}),
        }


@dataclass(frozen=True)
class Report:
    """Every check run for the jobs asked, and the versions of everything involved."""

    jobs: tuple[Job, ...]
    checks: tuple[Check, ...]
    versions: dict[str, str | None]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status is Status.FAIL]

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_json(self) -> dict[str, Any]:
        return {
            "jobs": [j.value for j in self.jobs],
            "checks": [c.to_json() for c in self.checks],
            "failed": [f"{c.job.value}/{c.name}" for c in self.failed],
            "versions": self.versions,
        }
