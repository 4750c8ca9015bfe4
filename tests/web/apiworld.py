"""The API tests' world: the app, its records, a clock the test moves, accounts (used by
the fixtures in conftest.py and imported by the tests by name)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from fastapi.testclient import TestClient
from software_hsm import SoftwareDeviceAuthKeys, SoftwareIssuerHsm

from sealcard.issuer.records import Records
from sealcard.parties.provider import ProviderCA
from sealcard.web.services import AppServices

OPERATOR = ("olivia", "operator password 1")
AUDITOR = ("arthur", "auditor password 1")


@dataclass
class Clock:
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@dataclass
class ApiWorld:
    client: TestClient
    services: AppServices
    clock: Clock
    url: str
    customers: list[tuple[str, str, int]]
    hsm: SoftwareIssuerHsm
    auth_keys: SoftwareDeviceAuthKeys
    ca: ProviderCA
    operator: tuple[str, str] = OPERATOR
    auditor: tuple[str, str] = AUDITOR

    def login(self, login: str, password: str) -> dict[str, str]:
        answer = self.client.post("/v1/session", json={"login": login, "password": password})
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['token']}"}

    def records(self) -> Records:
        return Records.open(self.url, "test")
