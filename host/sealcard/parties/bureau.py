"""The personalization bureau: step Q, injecting a sealed blob (and maybe its own PIN/PUK).

One card: optionally stage a PIN and PUK the bureau made itself (FIG. 2 variant: PUT PIN
PUK), then send the blob. The card checks the issuer's signature, then decrypts; the bureau
never sees the user key. A PIN/PUK inside the blob (FIG. 5) wins over the bureau's. A whole
batch file over many readers is parties/bureau_batch.py.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec

from sealcard.card.constants import State
from sealcard.card.encoding import CardStatus, PinStatus, Secret
from sealcard.card.session import SealcardSession
from sealcard.crypto import sealed_blob
from sealcard.crypto.pin import DEFAULT_PIN_DIGITS, DEFAULT_PUK_DIGITS, generate_pin, generate_puk
from sealcard.errors import SealcardError
from sealcard.transport.connection import TrafficCount


class BureauError(SealcardError):
    """The bureau cannot personalize this card with this blob (checked before sending it)."""


class CardNotInitializedError(BureauError):
    """PERSONALIZE needs a card in the INITIALIZED state."""


class BlobNotForThisCardError(BureauError):
    """The blob names another serial than the card's (the card would refuse it too)."""


@dataclass(frozen=True, repr=False)
class BureauPin:
    """A PIN and PUK the bureau made (FIG. 2). ``repr`` hides both."""

    pin: bytes
    puk: bytes

    def __repr__(self) -> str:
        return "BureauPin(pin=<secret>, puk=<secret>)"


def new_bureau_pin(
    randbytes: Callable[[int], bytes] = os.urandom,
    pin_digits: int = DEFAULT_PIN_DIGITS,
    puk_digits: int = DEFAULT_PUK_DIGITS,
) -> BureauPin:
    """A fresh, unbiased PIN and PUK for one card."""
    return BureauPin(generate_pin(randbytes, pin_digits), generate_puk(randbytes, puk_digits))


@dataclass(frozen=True)
class PersonalizationResult:
    """What step Q did to one card: its new state, user public key and PIN status, and cost."""

    serial: bytes
    status: CardStatus
    user_public_key: ec.EllipticCurvePublicKey
    pin_status: PinStatus
    bureau_pin_staged: bool
    seconds: float
    traffic: TrafficCount = field(default_factory=TrafficCount)


def blob_serial(blob: bytes) -> bytes:
    """The serial a blob was sealed for (framing checked; SealedBlobError when malformed)."""
    return sealed_blob.parse(blob).serial


def personalize_card(
    session: SealcardSession,
    blob: bytes,
    *,
    bureau_pin: Secret | None = None,
    bureau_puk: Secret | None = None,
) -> PersonalizationResult:
    """Step Q on one card: check state and serial, stage the bureau's PIN/PUK, PERSONALIZE.

    Raises CardNotInitializedError or BlobNotForThisCardError before touching
    the card; the card's own refusals come as the typed errors of
    SealcardSession.personalize (the card is then unchanged).
    """
    if (bureau_pin is None) != (bureau_puk is None):
        raise ValueError("give the bureau PIN and PUK together, or neither")
    status = session.refresh_status()
    if status.state != State.INITIALIZED:
        raise CardNotInitializedError(
            f"card is {status.state_name}; personalization needs an INITIALIZED card"
        )
    serial = blob_serial(blob)
    if status.serial != serial:
        raise BlobNotForThisCardError(
            f"the blob is for card {serial.hex().upper()}, this card is {status.serial_hex}"
        )
    before = session.traffic.apdus, session.traffic.bytes_sent, session.traffic.bytes_received
    start = time.perf_counter()
    if bureau_pin is not None and bureau_puk is not None:
        session.put_pin_puk(bureau_pin, bureau_puk)
    session.personalize(blob)
    seconds = time.perf_counter() - start
    traffic = TrafficCount(
        session.traffic.apdus - before[0],
        session.traffic.bytes_sent - before[1],
        session.traffic.bytes_received - before[2],
    )
    return PersonalizationResult(
        serial=serial,
        status=session.refresh_status(),
        user_public_key=session.user_public_key(),
        pin_status=session.pin_status(),
        bureau_pin_staged=bureau_pin is not None,
        seconds=seconds,
        traffic=traffic,
    )
