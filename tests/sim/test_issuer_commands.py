"""Issuer-authenticated commands (claim 14) on simulated cards: PIN reset and termination,
and every way a wrong, replayed or misdirected issuer signature is refused."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from personal import (
    NEW_PIN,
    PIN,
    WRONG_PIN,
    Issued,
    issue,
    personalized,
    session_on,
    signer_of,
    snapshot,
    sw_of,
    transceive,
)

from sealcard.card import constants as c
from sealcard.card.encoding import encode_tlv, issuer_command_message
from sealcard.card.errors import (
    BlockedError,
    InvalidPinError,
    IssuerSignatureError,
    NoChallengeError,
    WrongStateError,
)
from sealcard.card.secp256k1 import verify_hash_signature
from sealcard.card.session import SealcardSession
from sealcard.parties.provider import ProviderCA
from sealcard.transport.apdu import Apdu

pytestmark = pytest.mark.sim

RESET = c.IssuerCommand.RESET_PIN
TERMINATE = c.IssuerCommand.TERMINATE
DIGEST = hashlib.sha256(b"issuer command tests").digest()
NEW_PIN_BODY = encode_tlv(c.TAG_PIN, NEW_PIN)
UNKNOWN_ISSUER_COMMAND = 0x03


@pytest.fixture
def ready(sim_cards: list[Any], ca: ProviderCA, issuer: ec.EllipticCurvePrivateKey) -> Issued:
    return personalized(issue(sim_cards[-1], ca, issuer))


def _signed(session: SealcardSession, issued: Issued, kind: c.IssuerCommand, body: bytes) -> bytes:
    """GET CHALLENGE and the issuer's signature over the command for it."""
    challenge = session.get_challenge()
    message = session.issuer_command_message(kind, body, challenge)
    return signer_of(issued.device_auth)(message)


def _block_pin(session: SealcardSession) -> None:
    for _ in range(c.PIN_TRY_LIMIT):
        with pytest.raises(InvalidPinError):
            session.verify_pin(WRONG_PIN)


def test_issuer_reset_pin_unblocks_and_sets_the_pin(ready: Issued) -> None:
    with session_on(ready.card) as session:
        _block_pin(session)
        with pytest.raises(BlockedError):
            session.verify_pin(PIN)
        session.issuer_reset_pin(NEW_PIN, signer_of(ready.device_auth))
        status = session.pin_status()
        assert status.pin_tries_remaining == c.PIN_TRY_LIMIT
        assert status.puk_tries_remaining == c.PUK_TRY_LIMIT
        with pytest.raises(InvalidPinError):
            session.verify_pin(PIN)
        session.verify_pin(NEW_PIN)
        verify_hash_signature(session.user_public_key(), DIGEST, session.sign_hash(DIGEST))


def test_issuer_terminate_wipes_the_key_for_good(ready: Issued) -> None:
    with session_on(ready.card) as session:
        session.verify_pin(PIN)
        status = session.issuer_terminate(signer_of(ready.device_auth))
        assert status.state == c.State.TERMINATED
    with session_on(ready.card) as session:
        assert session.state == c.State.TERMINATED
        assert session.read_serial() == ready.serial  # GET DATA still answers
        for action in (
            lambda: session.verify_pin(PIN),
            lambda: session.sign_hash(DIGEST),
            lambda: session.get_challenge(),
            lambda: session.internal_authenticate(bytes(16)),
            lambda: session.unblock_pin(b"12345678", NEW_PIN),
            lambda: session.personalize(ready.blob()),
        ):
            assert sw_of(action) == c.SW_CONDITIONS_NOT_SATISFIED


def test_wrong_issuer_key_refused_card_unchanged(ready: Issued) -> None:
    other = signer_of(ec.generate_private_key(ec.SECP256R1()))
    with session_on(ready.card) as session:
        before = snapshot(session)
        with pytest.raises(IssuerSignatureError) as info:
            session.issuer_reset_pin(NEW_PIN, other)
        assert info.value.sw == c.SW_SECURITY_STATUS_NOT_SATISFIED
        with pytest.raises(IssuerSignatureError):
            session.issuer_terminate(other)
        assert snapshot(session) == before
        session.verify_pin(PIN)
        # the refusals changed nothing: the key from the blob still commands the card
        session.issuer_reset_pin(NEW_PIN, signer_of(ready.device_auth))
        session.verify_pin(NEW_PIN)


def test_replayed_issuer_command_refused(ready: Issued) -> None:
    with session_on(ready.card) as session:
        signature = _signed(session, ready, RESET, NEW_PIN_BODY)
        session.send_issuer_command(RESET, NEW_PIN_BODY, signature)
        session.verify_pin(NEW_PIN)
        session.change_pin(NEW_PIN, PIN)
        before = snapshot(session)
        with pytest.raises(NoChallengeError):  # the challenge was consumed
            session.send_issuer_command(RESET, NEW_PIN_BODY, signature)
        session.get_challenge()
        with pytest.raises(IssuerSignatureError):  # a fresh challenge: the old signature fails
            session.send_issuer_command(RESET, NEW_PIN_BODY, signature)
        assert snapshot(session) == before
        session.verify_pin(PIN)


def test_refused_signature_still_consumes_the_challenge(ready: Issued) -> None:
    with session_on(ready.card) as session:
        challenge = session.get_challenge()
        message = session.issuer_command_message(RESET, NEW_PIN_BODY, challenge)
        good = signer_of(ready.device_auth)(message)
        bad = signer_of(ec.generate_private_key(ec.SECP256R1()))(message)
        with pytest.raises(IssuerSignatureError):
            session.send_issuer_command(RESET, NEW_PIN_BODY, bad)
        with pytest.raises(NoChallengeError):
            session.send_issuer_command(RESET, NEW_PIN_BODY, good)
        session.verify_pin(PIN)


def test_issuer_command_without_challenge_refused(ready: Issued) -> None:
    with session_on(ready.card) as session:
        message = session.issuer_command_message(TERMINATE, b"", bytes(c.CHALLENGE_LENGTH))
        signature = signer_of(ready.device_auth)(message)
        with pytest.raises(NoChallengeError):
            session.send_issuer_command(TERMINATE, b"", signature)
        assert session.select().state == c.State.PERSONALIZED


def test_challenge_discarded_by_another_command(ready: Issued) -> None:
    with session_on(ready.card) as session:
        signature = _signed(session, ready, TERMINATE, b"")
        session.read_serial()
        with pytest.raises(NoChallengeError):
            session.send_issuer_command(TERMINATE, b"", signature)
        assert session.select().state == c.State.PERSONALIZED


def test_challenge_lost_on_reset(ready: Issued) -> None:
    with session_on(ready.card) as session:
        signature = _signed(session, ready, TERMINATE, b"")
        session.connection.inner.reset()  # type: ignore[attr-defined]
        session.select()
        with pytest.raises(NoChallengeError):
            session.send_issuer_command(TERMINATE, b"", signature)
        assert session.state == c.State.PERSONALIZED


@pytest.mark.parametrize("what", ["serial", "p1", "body", "ins"])
def test_signature_over_another_command_refused(ready: Issued, what: str) -> None:
    sign = signer_of(ready.device_auth)
    with session_on(ready.card) as session:
        before = snapshot(session)
        challenge = session.get_challenge()
        serial = ready.serial
        ins, p1, body = c.INS_ISSUER_COMMAND, int(RESET), NEW_PIN_BODY
        if what == "serial":
            serial = bytes((serial[0] ^ 1,)) + serial[1:]
        elif what == "p1":
            p1 = int(TERMINATE)
        elif what == "body":
            body = encode_tlv(c.TAG_PIN, b"0000")
        else:
            ins = c.INS_PERSONALIZE
        signature = sign(issuer_command_message(serial, challenge, ins, p1, 0, body))
        with pytest.raises(IssuerSignatureError):
            session.send_issuer_command(RESET, NEW_PIN_BODY, signature)
        assert snapshot(session) == before
        session.verify_pin(PIN)


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        (RESET, b""),
        (RESET, encode_tlv(c.TAG_PUK, b"12345678")),
        (RESET, encode_tlv(c.TAG_PIN, b"12a4")),
        (RESET, encode_tlv(c.TAG_PIN, b"123")),
        (TERMINATE, b"\x00"),
    ],
    ids=["reset_empty", "reset_puk_tag", "reset_non_digit", "reset_short", "terminate_body"],
)
def test_well_signed_malformed_body_refused(
    ready: Issued, kind: c.IssuerCommand, body: bytes
) -> None:
    with session_on(ready.card) as session:
        before = snapshot(session)
        signature = _signed(session, ready, kind, body)
        assert sw_of(lambda: session.send_issuer_command(kind, body, signature)) == (
            c.SW_WRONG_DATA
        )
        assert snapshot(session) == before
        assert session.select().state == c.State.PERSONALIZED


def test_unknown_issuer_command_refused(ready: Issued) -> None:
    with session_on(ready.card) as session:
        session.get_challenge()
        data = b"\x00" + bytes(70)
        apdu = Apdu(c.CLA_PROPRIETARY, c.INS_ISSUER_COMMAND, UNKNOWN_ISSUER_COMMAND, 0, data)
        assert transceive(session, apdu)[1] == c.SW_INCORRECT_P1P2


def test_issuer_command_before_personalization_refused(
    sim_cards: list[Any], ca: ProviderCA, issuer: ec.EllipticCurvePrivateKey
) -> None:
    issued = issue(sim_cards[-1], ca, issuer)
    with session_on(issued.card) as session:
        with pytest.raises(WrongStateError) as info:
            session.issuer_terminate(signer_of(issued.device_auth))
        assert info.value.sw == c.SW_CONDITIONS_NOT_SATISFIED
        assert session.select().state == c.State.INITIALIZED
