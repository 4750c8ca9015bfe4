"""PIN and PUK on simulated cards: the three variants, retry counters, unblock, PUK exhaustion."""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from personal import (
    NEW_PIN,
    PIN,
    PUK,
    WRONG_PIN,
    WRONG_PUK,
    Issued,
    issue,
    personalized,
    session_on,
    snapshot,
    sw_of,
    transceive,
)
from simcards import tear

from sealcard.card import constants as c
from sealcard.card.errors import (
    BlockedError,
    InvalidPinError,
    PinNotSetError,
    PinNotVerifiedError,
)
from sealcard.card.secp256k1 import verify_hash_signature
from sealcard.parties import bureau
from sealcard.parties.provider import ProviderCA
from sealcard.transport.apdu import Apdu

pytestmark = pytest.mark.sim

DIGEST = hashlib.sha256(b"pin tests").digest()
BUREAU_PIN = b"8642"
BUREAU_PUK = b"864286428642"


@pytest.fixture
def fresh(sim_cards: list[Any], ca: ProviderCA, issuer: ec.EllipticCurvePrivateKey) -> Issued:
    return issue(sim_cards[-1], ca, issuer)


def _signs(issued: Issued) -> None:
    with session_on(issued.card) as session:
        verify_hash_signature(session.user_public_key(), DIGEST, session.sign_hash(DIGEST))


# ---- the three variants --------------------------------------------------------------------


def test_pin_from_the_blob(fresh: Issued) -> None:
    personalized(fresh)
    with session_on(fresh.card) as session:
        status = session.pin_status()
        assert status.pin_set and status.pin_tries_remaining == c.PIN_TRY_LIMIT
        with pytest.raises(InvalidPinError):
            session.verify_pin(BUREAU_PIN)
        session.verify_pin(PIN)
        verify_hash_signature(session.user_public_key(), DIGEST, session.sign_hash(DIGEST))


def test_pin_from_the_bureau(fresh: Issued) -> None:
    with session_on(fresh.card) as session:
        bureau.personalize_card(
            session, fresh.blob(pin=None, puk=None), bureau_pin=BUREAU_PIN, bureau_puk=BUREAU_PUK
        )
        session.verify_pin(BUREAU_PIN)
        assert session.pin_verified()
    with session_on(fresh.card) as session:
        with pytest.raises(InvalidPinError):
            session.unblock_pin(PUK, NEW_PIN)  # the blob had no PUK; the bureau's rules
        session.unblock_pin(BUREAU_PUK, NEW_PIN)
        session.verify_pin(NEW_PIN)


def test_bureau_pin_staged_again_replaces_the_first(fresh: Issued) -> None:
    with session_on(fresh.card) as session:
        session.put_pin_puk(b"1111", b"11111111")
        session.put_pin_puk(BUREAU_PIN, BUREAU_PUK)
        session.personalize(fresh.blob(pin=None, puk=None))
        with pytest.raises(InvalidPinError):
            session.verify_pin(b"1111")
        session.verify_pin(BUREAU_PIN)


def test_blob_pin_wins_over_the_bureau_pin(fresh: Issued) -> None:
    with session_on(fresh.card) as session:
        bureau.personalize_card(session, fresh.blob(), bureau_pin=BUREAU_PIN, bureau_puk=BUREAU_PUK)
        with pytest.raises(InvalidPinError):
            session.verify_pin(BUREAU_PIN)
        session.verify_pin(PIN)


def test_user_chosen_pin(fresh: Issued) -> None:
    personalized(fresh, pin=None, puk=None)
    with session_on(fresh.card) as session:
        assert not session.pin_status().pin_set
        with pytest.raises(PinNotSetError):
            session.verify_pin(PIN)
        with pytest.raises(PinNotVerifiedError):
            session.sign_hash(DIGEST)
        session.set_initial_pin_puk(PIN, PUK)
        assert session.pin_status().pin_set
        assert sw_of(lambda: session.set_initial_pin_puk(NEW_PIN, PUK)) == (
            c.SW_CONDITIONS_NOT_SATISFIED
        )
        session.verify_pin(PIN)
        verify_hash_signature(session.user_public_key(), DIGEST, session.sign_hash(DIGEST))


@pytest.mark.parametrize(
    "data",
    [
        b"\x03\x041234",  # no PUK
        b"\x04\x0812345678\x03\x041234",  # PUK first
        b"\x03\x0412a4\x04\x0812345678",  # PIN not digits
        b"\x03\x03123\x04\x0812345678",  # PIN too short
        b"\x03\x041234\x04\x071234567",  # PUK too short
        b"\x03\x041234\x04\x0812345678\x00",  # trailing byte
    ],
    ids=["no_puk", "order", "non_digit", "pin_short", "puk_short", "trailing"],
)
def test_put_pin_puk_malformed_refused(fresh: Issued, data: bytes) -> None:
    with session_on(fresh.card) as session:
        before = snapshot(session)
        apdu = Apdu(c.CLA_PROPRIETARY, c.INS_PUT_PIN_PUK, 0, 0, data)
        assert transceive(session, apdu)[1] == c.SW_WRONG_DATA
        assert snapshot(session) == before


def test_put_pin_puk_after_personalization_refused(fresh: Issued) -> None:
    personalized(fresh)
    with session_on(fresh.card) as session:
        assert sw_of(lambda: session.put_pin_puk(BUREAU_PIN, BUREAU_PUK)) == (
            c.SW_CONDITIONS_NOT_SATISFIED
        )
        session.verify_pin(PIN)


def test_pin_commands_before_personalization_refused(fresh: Issued) -> None:
    with session_on(fresh.card) as session:
        for action in (
            lambda: session.verify_pin(PIN),
            lambda: session.change_pin(PIN, NEW_PIN),
            lambda: session.unblock_pin(PUK, NEW_PIN),
            lambda: session.sign_hash(DIGEST),
        ):
            assert sw_of(action) == c.SW_CONDITIONS_NOT_SATISFIED


# ---- counters, unblock, change ---------------------------------------------------------------


def test_pin_exhaustion_then_unblock(fresh: Issued) -> None:
    personalized(fresh)
    with session_on(fresh.card) as session:
        for left in range(c.PIN_TRY_LIMIT - 1, -1, -1):
            with pytest.raises(InvalidPinError) as info:
                session.verify_pin(WRONG_PIN)
            assert info.value.tries_remaining == left
            assert info.value.sw == c.SW_PIN_TRIES_REMAINING | left
        with pytest.raises(BlockedError):
            session.verify_pin(PIN)  # the right PIN no longer helps
        assert session.pin_status().pin_tries_remaining == 0
        assert sw_of(lambda: session.sign_hash(DIGEST)) == c.SW_SECURITY_STATUS_NOT_SATISFIED
        with pytest.raises(InvalidPinError) as wrong_puk:
            session.unblock_pin(WRONG_PUK, NEW_PIN)
        assert wrong_puk.value.tries_remaining == c.PUK_TRY_LIMIT - 1
        session.unblock_pin(PUK, NEW_PIN)
        status = session.pin_status()
        assert status.pin_tries_remaining == c.PIN_TRY_LIMIT
        assert status.puk_tries_remaining == c.PUK_TRY_LIMIT
        with pytest.raises(InvalidPinError):
            session.verify_pin(PIN)
        session.verify_pin(NEW_PIN)
        verify_hash_signature(session.user_public_key(), DIGEST, session.sign_hash(DIGEST))


def test_correct_pin_restores_the_counter(fresh: Issued) -> None:
    personalized(fresh)
    with session_on(fresh.card) as session:
        with pytest.raises(InvalidPinError):
            session.verify_pin(WRONG_PIN)
        session.verify_pin(PIN)
        assert session.pin_status().pin_tries_remaining == c.PIN_TRY_LIMIT


def test_puk_exhaustion_makes_the_user_key_unusable(fresh: Issued) -> None:
    personalized(fresh)
    _verify_and_sign(fresh)
    with session_on(fresh.card) as session:
        for left in range(c.PUK_TRY_LIMIT - 1, 0, -1):
            with pytest.raises(InvalidPinError) as info:
                session.unblock_pin(WRONG_PUK, NEW_PIN)
            assert info.value.tries_remaining == left
        with pytest.raises(BlockedError):
            session.unblock_pin(WRONG_PUK, NEW_PIN)  # the last try blocks the PUK
        with pytest.raises(BlockedError):
            session.unblock_pin(PUK, NEW_PIN)
        assert session.pin_status().puk_tries_remaining == 0
    tear(fresh.card)
    with session_on(fresh.card) as session:
        with contextlib.suppress(InvalidPinError, BlockedError):
            session.verify_pin(PIN)  # whatever it answers, the key must be gone
        assert sw_of(lambda: session.sign_hash(DIGEST)) in (
            c.SW_SECURITY_STATUS_NOT_SATISFIED,
            c.SW_CONDITIONS_NOT_SATISFIED,
        )
        with pytest.raises(BlockedError):
            session.unblock_pin(PUK, NEW_PIN)


def _verify_and_sign(issued: Issued) -> None:
    with session_on(issued.card) as session:
        session.verify_pin(PIN)
        verify_hash_signature(session.user_public_key(), DIGEST, session.sign_hash(DIGEST))


def test_change_pin(fresh: Issued) -> None:
    personalized(fresh)
    with session_on(fresh.card) as session:
        with pytest.raises(InvalidPinError) as info:
            session.change_pin(WRONG_PIN, NEW_PIN)
        assert info.value.tries_remaining == c.PIN_TRY_LIMIT - 1
        session.change_pin(PIN, NEW_PIN)
    with session_on(fresh.card) as session:
        with pytest.raises(InvalidPinError):
            session.verify_pin(PIN)
        session.verify_pin(NEW_PIN)


def test_counter_survives_a_tear(fresh: Issued) -> None:
    personalized(fresh)
    with session_on(fresh.card) as session, pytest.raises(InvalidPinError):
        session.verify_pin(WRONG_PIN)
    tear(fresh.card)
    with session_on(fresh.card) as session:
        assert session.pin_status().pin_tries_remaining == c.PIN_TRY_LIMIT - 1


# ---- verification is per card session --------------------------------------------------------


def test_pin_verification_does_not_survive_a_reset(fresh: Issued) -> None:
    personalized(fresh)
    with session_on(fresh.card) as session:
        session.verify_pin(PIN)
        assert session.pin_verified()
        session.sign_hash(DIGEST)
        session.connection.inner.reset()  # type: ignore[attr-defined]  # PcscConnection.reset
        session.select()
        assert not session.pin_verified()
        with pytest.raises(PinNotVerifiedError):
            session.sign_hash(DIGEST)


def test_pin_verification_does_not_survive_a_tear(fresh: Issued) -> None:
    personalized(fresh)
    with session_on(fresh.card) as session:
        session.verify_pin(PIN)
    tear(fresh.card)
    with session_on(fresh.card) as session:
        assert not session.pin_verified()
        with pytest.raises(PinNotVerifiedError):
            session.sign_hash(DIGEST)
