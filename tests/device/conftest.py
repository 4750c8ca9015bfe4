"""Tests on a real card in a real reader: opt-in, read-only.

Set SEALCARD_DEVICE_READER to the PC/SC reader name holding a sealcard card (any life-cycle
state past blank) and, to check genuineness, SEALCARD_DEVICE_ROOT to the provider's root
certificate (PEM). Without SEALCARD_DEVICE_READER every test here is skipped. These tests
never change the card: no key generation, no PIN tries, no personalization.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealcard.card.session import SealcardSession
from sealcard.transport.pcsc import PcscConnection

READER_ENV = "SEALCARD_DEVICE_READER"
ROOT_ENV = "SEALCARD_DEVICE_ROOT"


@pytest.fixture
def device_session() -> Iterator[SealcardSession]:
    reader = os.environ.get(READER_ENV)
    if not reader:
        pytest.skip(f"no real card named: set {READER_ENV} to a reader with a sealcard card")
    with PcscConnection.open(reader) as connection:
        yield SealcardSession(connection)


@pytest.fixture
def device_root() -> Path:
    root = os.environ.get(ROOT_ENV)
    if not root:
        pytest.skip(f"set {ROOT_ENV} to the provider root certificate (PEM) to check genuineness")
    return Path(root)
