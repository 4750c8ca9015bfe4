"""PERSONALIZE on simulated cards over PC/SC: seal -> personalize -> sign, and every refusal.

Uses the last two simulated cards (sim_cards[-1], sim_cards[-2]) so that
other sim test modules working on the first cards are not disturbed.
"""

from __future__ import annotations

import hashlib
from typing import Any

import coincurve
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from personal import (
    PIN,
    PUK,
    Issued,
    issue,
    point,
    session_on,
    signer_of,
    snapshot,
    sw_of,
    transceive,
)
from simcards import reset_blank, tear

from sealcard.card import constants as c
from sealcard.card.errors import BadSignatureError, WrongCardError
from sealcard.card.secp256k1 import HALF_N, recoverable_signature
from sealcard.crypto.sealed_blob import SealedPayload, seal
from sealcard.parties import bureau
from sealcard.parties.provider import ProviderCA
from sealcard.transport.apdu import CHAINING_BIT, SHORT_MAX_DATA, Apdu

pytestmark = pytest.mark.sim

SECP256K1_N = 2 * HALF_N + 1
OTHER_SERIAL = bytes.fromhex("0BADCA4D00000002")


@pytest.fixture(scope="module")
def waiting(sim_cards: list[Any], ca: ProviderCA, issuer: ec.EllipticCurvePrivateKey) -> Issued:
    """An INITIALIZED card that every refusal test leaves INITIALIZED."""
    return issue(sim_cards[-1], ca, issuer, bytes.fromhex("5EA1CA4D00000001"))


def _flip(blob: bytes, offset: int) -> bytes:
    return blob[:offset] + bytes((blob[offset] ^ 0x01,)) + blob[offset + 1 :]


def _tampered(good: bytes, serial_length: int) -> dict[str, tuple[bytes, int]]:
    """Named tamperings of a good blob and the SW each must get (docs/apdu.md, PERSONALIZE)."""
    ct_length_at = 5 + serial_length
    ct_at = ct_length_at + 2
    sig_length_at = ct_at + 256
    return {
        "magic": (_flip(good, 0), c.SW_WRONG_DATA),
        "version": (good[:3] + b"\x02" + good[4:], c.SW_WRONG_DATA),
        "serial_length": (good[:4] + bytes((serial_length + 1,)) + good[5:], c.SW_WRONG_DATA),
        "serial": (_flip(good, 5 + serial_length - 1), c.SW_REFERENCED_DATA_NOT_FOUND),
        "ciphertext_length": (_flip(good, ct_length_at + 1), c.SW_WRONG_DATA),
        "ciphertext_first": (_flip(good, ct_at), c.SW_SECURITY_STATUS_NOT_SATISFIED),
        "ciphertext_last": (_flip(good, ct_at + 255), c.SW_SECURITY_STATUS_NOT_SATISFIED),
        "signature_length": (_flip(good, sig_length_at), c.SW_WRONG_DATA),
        "signature_value": (_flip(good, len(good) - 1), c.SW_SECURITY_STATUS_NOT_SATISFIED),
        "truncated_by_one": (good[:-1], c.SW_WRONG_DATA),
        "truncated_to_header": (good[:ct_at], c.SW_WRONG_DATA),
        "extended_by_one": (good + b"\x00", c.SW_WRONG_DATA),
        "extended_by_blob": (good + good, c.SW_WRONG_DATA),
    }


TAMPER_NAMES = list(_tampered(bytes(400), 8))


@pytest.mark.parametrize("extended", [False, True], ids=["chained", "extended"])
@pytest.mark.parametrize("name", TAMPER_NAMES)
def test_tampered_blob_refused_card_unchanged(waiting: Issued, name: str, extended: bool) -> None:
    blob, expected = _tampered(waiting.blob(), len(waiting.serial))[name]
    with session_on(waiting.card, extended=extended) as session:
        before = snapshot(session)
        assert sw_of(lambda: session.personalize(blob)) == expected
        assert snapshot(session) == before
        assert session.select().state == c.State.INITIALIZED


def test_blob_for_another_card_refused(waiting: Issued) -> None:
    other_key = rsa.generate_private_key(65537, 2048).public_key()
    blob = seal(waiting.payload(), OTHER_SERIAL, other_key, signer_of(waiting.issuer))
    with session_on(waiting.card) as session:
        before = snapshot(session)
        with pytest.raises(WrongCardError) as info:
            session.personalize(blob)
        assert info.value.sw == c.SW_REFERENCED_DATA_NOT_FOUND
        assert snapshot(session) == before


def test_blob_signed_by_another_issuer_refused(waiting: Issued) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    blob = seal(waiting.payload(), waiting.serial, waiting.init.device_public_key, signer_of(other))
    with session_on(waiting.card) as session:
        before = snapshot(session)
        with pytest.raises(BadSignatureError):
            session.personalize(blob)
        assert snapshot(session) == before


def _bad_payloads(issued: Issued) -> dict[str, bytes]:
    key, auth = issued.user_key.secret, point(issued.device_auth)
    good_auth = bytes((0x02, len(auth))) + auth
    off_curve = auth[:-1] + bytes((auth[-1] ^ 0x01,))
    return {
        "empty": b"",
        "garbage": b"\xff" * 40,
        "user_key_zero": bytes((0x01, 32)) + bytes(32) + good_auth,
        "user_key_order": bytes((0x01, 32)) + SECP256K1_N.to_bytes(32, "big") + good_auth,
        "user_key_short": bytes((0x01, 31)) + key[:31] + good_auth,
        "no_device_auth_key": bytes((0x01, 32)) + key,
        "device_auth_off_curve": bytes((0x01, 32)) + key + bytes((0x02, 65)) + off_curve,
        "tags_out_of_order": good_auth + bytes((0x01, 32)) + key,
        "pin_not_digits": bytes((0x01, 32)) + key + good_auth + b"\x03\x0412a4\x04\x0812345678",
        "pin_without_puk": bytes((0x01, 32)) + key + good_auth + b"\x03\x041234",
        "trailing_byte": bytes((0x01, 32)) + key + good_auth + b"\x00",
    }


BAD_PAYLOAD_NAMES = [
    "empty",
    "garbage",
    "user_key_zero",
    "user_key_order",
    "user_key_short",
    "no_device_auth_key",
    "device_auth_off_curve",
    "tags_out_of_order",
    "pin_not_digits",
    "pin_without_puk",
    "trailing_byte",
]


@pytest.mark.parametrize("name", BAD_PAYLOAD_NAMES)
def test_invalid_payload_is_data_invalid_card_unchanged(waiting: Issued, name: str) -> None:
    blob = waiting.raw_blob(_bad_payloads(waiting)[name])
    with session_on(waiting.card) as session:
        before = snapshot(session)
        assert sw_of(lambda: session.personalize(blob)) == c.SW_DATA_INVALID
        assert snapshot(session) == before


def test_blob_encrypted_to_another_device_key_is_data_invalid(waiting: Issued) -> None:
    other_key = rsa.generate_private_key(65537, 2048).public_key()
    payload = SealedPayload(waiting.user_key.secret, point(waiting.device_auth), PIN, PUK)
    blob = seal(payload, waiting.serial, other_key, signer_of(waiting.issuer))
    with session_on(waiting.card) as session:
        before = snapshot(session)
        assert sw_of(lambda: session.personalize(blob)) == c.SW_DATA_INVALID
        assert snapshot(session) == before


def test_chain_torn_between_chunks_leaves_card_unchanged(waiting: Issued) -> None:
    blob = waiting.blob()
    first = Apdu(c.CLA_PROPRIETARY | CHAINING_BIT, c.INS_PERSONALIZE, 0, 0, blob[:SHORT_MAX_DATA])
    with session_on(waiting.card) as session:
        before = snapshot(session)
        assert transceive(session, first)[1] == c.SW_OK
    tear(waiting.card)
    with session_on(waiting.card) as session:
        assert session.state == c.State.INITIALIZED
        assert snapshot(session) == before
        rest = Apdu(c.CLA_PROPRIETARY, c.INS_PERSONALIZE, 0, 0, blob[SHORT_MAX_DATA:])
        assert transceive(session, rest)[1] == c.SW_WRONG_DATA  # the tail alone is no blob
        assert snapshot(session) == before


def test_chain_abandoned_by_select_leaves_card_unchanged(waiting: Issued) -> None:
    blob = waiting.blob()
    first = Apdu(c.CLA_PROPRIETARY | CHAINING_BIT, c.INS_PERSONALIZE, 0, 0, blob[:SHORT_MAX_DATA])
    rest = Apdu(c.CLA_PROPRIETARY, c.INS_PERSONALIZE, 0, 0, blob[SHORT_MAX_DATA:])
    with session_on(waiting.card) as session:
        before = snapshot(session)
        assert transceive(session, first)[1] == c.SW_OK
        session.select()
        assert transceive(session, rest)[1] == c.SW_WRONG_DATA
        assert snapshot(session) == before


def test_personalize_in_blank_state_refused(
    sim_cards: list[Any], ca: ProviderCA, issuer: ec.EllipticCurvePrivateKey
) -> None:
    card = sim_cards[-2]
    reset_blank(card)
    with session_on(card) as session:
        assert sw_of(lambda: session.personalize(bytes(344))) == c.SW_CONDITIONS_NOT_SATISFIED
        assert session.select().state == c.State.BLANK


@pytest.mark.parametrize("extended", [False, True], ids=["chained", "extended"])
def test_seal_personalize_sign_verify_then_replay_refused(
    sim_cards: list[Any], ca: ProviderCA, issuer: ec.EllipticCurvePrivateKey, extended: bool
) -> None:
    issued = issue(sim_cards[-2], ca, issuer)
    blob = issued.blob()
    digest = hashlib.sha256(b"send 1 BTC to Bob").digest()
    with session_on(issued.card, extended=extended) as session:
        result = bureau.personalize_card(session, blob)
        assert result.status.state == c.State.PERSONALIZED
        personalize_apdus = result.traffic.apdus
        assert personalize_apdus == (1 if extended else 2)
        assert result.pin_status.pin_set
        assert result.pin_status.pin_tries_remaining == c.PIN_TRY_LIMIT
        assert result.pin_status.puk_tries_remaining == c.PUK_TRY_LIMIT
        card_key = session.user_public_key()
        assert card_key.public_bytes(*_x962()) == issued.user_point()
        session.verify_pin(PIN)
        der = session.sign_hash(digest)
        signature = recoverable_signature(card_key, digest, der)
        assert signature.low_s and signature.s <= HALF_N
        assert coincurve.PublicKey(issued.user_point()).verify(der, digest, hasher=None)
        recovered = coincurve.PublicKey.from_signature_and_message(
            signature.compact + bytes((signature.recovery_id,)), digest, hasher=None
        )
        assert recovered.format(compressed=False) == issued.user_point()
        before = snapshot(session)
        assert sw_of(lambda: session.personalize(blob)) == c.SW_CONDITIONS_NOT_SATISFIED
        other = issued.blob(pin=b"1111", puk=b"22222222")
        assert sw_of(lambda: session.personalize(other)) == c.SW_CONDITIONS_NOT_SATISFIED
        assert snapshot(session) == before
        session.verify_pin(PIN)  # the first blob's PIN still rules


def _x962() -> tuple[Encoding, PublicFormat]:
    return Encoding.X962, PublicFormat.UncompressedPoint


def test_good_blob_still_accepted_after_all_refusals(waiting: Issued) -> None:
    """Runs last in this module: the refusals left the card able to take its real blob."""
    with session_on(waiting.card) as session:
        session.personalize(waiting.blob())
        assert session.select().state == c.State.PERSONALIZED
        assert session.user_public_key().public_bytes(*_x962()) == waiting.user_point()
