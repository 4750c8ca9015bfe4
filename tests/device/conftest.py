"""Tests on a real card in a real reader: opt-in.

Set SEALCARD_DEVICE_READER to the PC/SC reader name holding a sealcard card (any life-cycle
state past blank) and, to check genuineness, SEALCARD_DEVICE_ROOT to the provider's root
certificate (PEM). Without SEALCARD_DEVICE_READER every test here is skipped. The read-only
tests (test_device_card.py) never change the card.

test_device_chain.py runs the whole chain (step A to TERMINATE) on a card with a freshly
installed, BLANK applet, and only when SEALCARD_DEVICE_BLANK=1 is set as well: it uses the
card up (delete and install the applet again to reuse it). See docs/real-cards.md.
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
BLANK_ENV = "SEALCARD_DEVICE_BLANK"


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


@pytest.fixture
def blank_device_reader() -> str:
    """The reader of a blank card the test may use up (both variables set)."""
    reader = os.environ.get(READER_ENV)
    if not reader or os.environ.get(BLANK_ENV) != "1":
        pytest.skip(
            f"set {READER_ENV} and {BLANK_ENV}=1 to run the whole chain on a blank real card "
            "(it ends TERMINATED)"
        )
    return reader
