"""Every ECDSA signature the card answers is strict DER and verifies, over many signatures.

A step-A run failed now and then with "signed device key does not verify". The
cause was not the encoding (every signature was strict DER) but jCardSim's key
storage: a key generated again (the applet's install probe generates and clears
the issuer authentication key) whose private scalar is below 2^248, one in 256,
signed with a stale byte appended to its scalar. The simulator now replaces that
class. These tests sign many times on one card so that such one-in-a-few-hundred
defects show: SIGN DEVICE KEY with a new issuer authentication key and serial
each time (1000 runs: the old simulator fails this test with probability
1 - (255/256)^1000, about 98%), then INTERNAL AUTHENTICATE and SIGN HASH on a
personalized card. Each answer must be strict DER (what OpenSSL, and so the
host, insists on) and must verify.
"""

from __future__ import annotations

import os
from typing import Any, Final

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from personal import PIN, issue, personalized, session_on
from simcards import reset_blank

from sealcard.card import constants as c
from sealcard.card.secp256k1 import SECP256K1_N, is_low_s, verify_hash_signature
from sealcard.errors import VerificationError
from sealcard.formats.attestation import verify_internal_authenticate, verify_signed_device_key
from sealcard.parties.provider import ProviderCA

pytestmark = pytest.mark.sim

P256_N: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
STEP_A_RUNS: Final = 1000
INTERNAL_AUTH_RUNS: Final = 300
SIGN_HASH_RUNS: Final = 300
CHALLENGE_BYTES: Final = 16
HASH_BYTES: Final = 32
TAG_SEQUENCE: Final = 0x30
TAG_INTEGER: Final = 0x02
SHORT_FORM_LIMIT: Final = 0x80
SIGN_BIT: Final = 0x80
SIGNATURE_COMPONENTS: Final = 2


class NotStrictDerError(ValueError):
    """The bytes are not a strict DER ECDSA signature."""


def strict_der(signature: bytes, order: int) -> tuple[int, int]:
    """(r, s) of a strict DER ECDSA signature, else NotStrictDerError.

    One SEQUENCE with a short-form length covering exactly the rest, holding
    exactly two INTEGERs with short-form lengths, each in its shortest
    two's-complement form (no needless leading 00, no negative value), and
    1 <= value < order.
    """
    if len(signature) < 2 or signature[0] != TAG_SEQUENCE:
        raise NotStrictDerError("not a SEQUENCE")
    if signature[1] >= SHORT_FORM_LIMIT or signature[1] != len(signature) - 2:
        raise NotStrictDerError("SEQUENCE length not minimal or not the rest of the bytes")
    values: list[int] = []
    at = 2
    for _ in range(SIGNATURE_COMPONENTS):
        if at + 2 > len(signature) or signature[at] != TAG_INTEGER:
            raise NotStrictDerError(f"no INTEGER at {at}")
        length = signature[at + 1]
        body = signature[at + 2 : at + 2 + length]
        if length == 0 or length >= SHORT_FORM_LIMIT or len(body) != length:
            raise NotStrictDerError(f"INTEGER length {length} at {at}")
        if body[0] & SIGN_BIT:
            raise NotStrictDerError(f"negative INTEGER at {at}")
        if length > 1 and body[0] == 0 and not body[1] & SIGN_BIT:
            raise NotStrictDerError(f"needless leading zero in the INTEGER at {at}")
        value = int.from_bytes(body, "big")
        if not 1 <= value < order:
            raise NotStrictDerError(f"INTEGER at {at} out of range")
        values.append(value)
        at += 2 + length
    if at != len(signature):
        raise NotStrictDerError("bytes after the signature")
    return values[0], values[1]


@pytest.mark.parametrize(
    ("what", "sloppy"),
    [
        ("r with a needless leading 00", "30070202000102017f"),
        ("r negative (00 pad missing)", "30060201800201 7f"),
        ("long-form SEQUENCE length", "3081060201010201 7f"),
        ("a byte after the SEQUENCE", "30070201010201 7f00"),
        ("r = 0", "30060201000201 7f"),
        ("one INTEGER only", "3003020101"),
    ],
)
def test_strict_der_check_refuses_sloppy_encodings(what: str, sloppy: str) -> None:
    with pytest.raises(NotStrictDerError):
        strict_der(bytes.fromhex(sloppy), P256_N)


def test_strict_der_check_accepts_a_minimal_signature() -> None:
    assert strict_der(bytes.fromhex("3008020101020300ff01"), P256_N) == (1, 0xFF01)


def test_signed_device_key_verifies_for_many_fresh_keys(sim_cards: list[Any]) -> None:
    card = sim_cards[-1]
    reset_blank(card)
    failures: list[str] = []
    with session_on(card) as session:
        device_key = session.generate_device_key()
        for run in range(STEP_A_RUNS):
            auth_key = session.generate_issuer_auth_key()
            serial = session.generate_serial()
            signature = session.sign_device_key()
            try:
                strict_der(signature, P256_N)
                verify_signed_device_key(signature, serial, device_key, auth_key)
            except (NotStrictDerError, VerificationError) as exc:
                failures.append(f"run {run}: {exc}: {signature.hex()}")
    reset_blank(card)
    assert failures == []


def test_internal_authenticate_and_sign_hash_are_strict_der(
    sim_cards: list[Any], ca: ProviderCA
) -> None:
    issuer = ec.generate_private_key(ec.SECP256R1())
    issued = personalized(issue(sim_cards[-1], ca, issuer))
    auth_key = issued.init.issuer_auth_public_key
    failures: list[str] = []
    with session_on(issued.card) as session:
        session.select()
        assert session.state == c.State.PERSONALIZED
        for run in range(INTERNAL_AUTH_RUNS):
            challenge = os.urandom(CHALLENGE_BYTES)
            signature = session.internal_authenticate(challenge)
            try:
                strict_der(signature, P256_N)
                verify_internal_authenticate(signature, issued.serial, challenge, auth_key)
            except (NotStrictDerError, VerificationError) as exc:
                failures.append(f"INTERNAL AUTHENTICATE {run}: {exc}: {signature.hex()}")
        session.verify_pin(PIN)
        user_key = session.user_public_key()
        for run in range(SIGN_HASH_RUNS):
            digest = os.urandom(HASH_BYTES)
            signature = session.sign_hash(digest)
            try:
                strict_der(signature, SECP256K1_N)
                verify_hash_signature(user_key, digest, signature)
                if not is_low_s(signature):
                    failures.append(f"SIGN HASH {run}: high S: {signature.hex()}")
            except (NotStrictDerError, VerificationError) as exc:
                failures.append(f"SIGN HASH {run}: {exc}: {signature.hex()}")
    assert failures == []
