"""`sealcard doctor --for cards --for sim` with simulated cards behind pcscd: every reader and
every card found, each card recognised as sealcard, exit 0."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sealcard_cli import run_json

if TYPE_CHECKING:
    from conftest import SimCards

pytestmark = pytest.mark.sim


def test_doctor_finds_pcscd_readers_and_sealcard_cards(sim_cards: SimCards) -> None:
    report = run_json("doctor", "--for", "cards", "--for", "sim")
    assert report["ok"] is True and report["jobs"] == ["cards", "sim"]
    checks = {f"{c['job']}/{c['name']}": c for c in report["checks"]}
    assert all(c["status"] == "ok" for c in checks.values()), checks
    assert set(sim_cards.readers) <= set(checks["cards/readers"]["data"]["readers"])
    entries = {e["reader"]: e for e in checks["cards/cards"]["data"]["readers"]}
    for reader in sim_cards.readers:
        assert entries[reader]["card"] is True
        assert entries[reader]["sealcard"] is True, entries[reader]
        assert entries[reader]["state"]
