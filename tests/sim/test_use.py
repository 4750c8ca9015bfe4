"""Using a personalized simulated card: user key, SIGN HASH (low S, libsecp256k1), challenges,
INTERNAL AUTHENTICATE against the root-certified key."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import coincurve
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from personal import PIN, Issued, issue, personalized, session_on, sw_of, transceive

from sealcard.card import constants as c
from sealcard.card.errors import PinNotVerifiedError
from sealcard.card.secp256k1 import HALF_N, is_low_s, point_bytes, recoverable_signature
from sealcard.errors import VerificationError
from sealcard.formats.attestation import verify_internal_authenticate
from sealcard.parties import user
from sealcard.parties.provider import ProviderCA
from sealcard.transport.apdu import Apdu

pytestmark = pytest.mark.sim

SIGNATURES = 12


@pytest.fixture(scope="module")
def ready(sim_cards: list[Any], ca: ProviderCA, issuer: ec.EllipticCurvePrivateKey) -> Issued:
    return personalized(issue(sim_cards[-2], ca, issuer))


def test_user_public_key_is_the_sealed_key(ready: Issued) -> None:
    with session_on(ready.card) as session:
        key = session.user_public_key()
        info = user.user_key_info(session)
    assert point_bytes(key) == ready.user_point()
    assert info.compressed_hex == ready.user_key.public_key.format().hex()


def test_signatures_verify_low_s_fresh_nonces_recoverable(ready: Issued) -> None:
    expected = coincurve.PublicKey(ready.user_point())
    seen_r: set[int] = set()
    with session_on(ready.card) as session:
        key = session.user_public_key()
        session.verify_pin(PIN)
        digests = [hashlib.sha256(bytes([i])).digest() for i in range(SIGNATURES - 2)]
        digests += [digests[0], digests[0]]  # same hash again: r must differ
        for digest in digests:
            der = session.sign_hash(digest)
            assert is_low_s(der)
            assert expected.verify(der, digest, hasher=None)  # libsecp256k1: low-S only
            result = recoverable_signature(key, digest, der)
            assert result.s <= HALF_N
            recovered = coincurve.PublicKey.from_signature_and_message(
                result.compact + bytes((result.recovery_id,)), digest, hasher=None
            )
            assert recovered.format() == expected.format()
            seen_r.add(result.r)
    assert len(seen_r) == len(digests)


def test_sign_workflow_checks_pin_and_signature(ready: Issued) -> None:
    digest = os.urandom(32)
    with session_on(ready.card) as session:
        result = user.sign_hash(session, digest, PIN)
    assert result.low_s
    assert ready.user_key.public_key.verify(result.der, digest, hasher=None)


def test_sign_needs_the_pin_in_this_session(ready: Issued) -> None:
    with session_on(ready.card) as session:
        session.connection.inner.reset()  # type: ignore[attr-defined]
        session.select()
        with pytest.raises(PinNotVerifiedError) as info:
            session.sign_hash(bytes(32))
        assert info.value.sw == c.SW_SECURITY_STATUS_NOT_SATISFIED


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_sign_hash_wrong_length_refused(ready: Issued, length: int) -> None:
    with session_on(ready.card) as session:
        session.verify_pin(PIN)
        p1p2 = c.PSO_P1P2_SIGN
        apdu = Apdu(c.CLA_ISO7816, c.INS_SIGN_HASH, p1p2 >> 8, p1p2 & 0xFF, bytes(length), 256)
        assert transceive(session, apdu)[1] == c.SW_WRONG_LENGTH


def test_sign_hash_wrong_p1p2_refused(ready: Issued) -> None:
    with session_on(ready.card) as session:
        session.verify_pin(PIN)
        apdu = Apdu(c.CLA_ISO7816, c.INS_SIGN_HASH, 0x9E, 0x00, bytes(32), 256)
        assert transceive(session, apdu)[1] == c.SW_INCORRECT_P1P2


def test_get_challenge_is_fresh(ready: Issued) -> None:
    with session_on(ready.card) as session:
        challenges = {session.get_challenge() for _ in range(8)}
    assert len(challenges) == 8
    assert all(len(x) == c.CHALLENGE_LENGTH for x in challenges)


def test_card_authenticates_with_its_certified_key(ready: Issued, ca: ProviderCA) -> None:
    with session_on(ready.card) as session:
        result = user.authenticate_card(session, ca.certificate)
        assert result.genuine, result.reason
        challenge = os.urandom(c.INTERNAL_AUTH_CHALLENGE_MAX)
        signature = session.internal_authenticate(challenge)
    cert_key = ready.init.issuer_auth_key_certificate.public_key()
    assert isinstance(cert_key, ec.EllipticCurvePublicKey)
    verify_internal_authenticate(signature, ready.serial, challenge, cert_key)
    with pytest.raises(VerificationError):
        verify_internal_authenticate(signature, ready.serial, challenge[::-1], cert_key)
    with pytest.raises(VerificationError):
        verify_internal_authenticate(signature, b"\x00" + ready.serial[1:], challenge, cert_key)


def test_card_is_not_genuine_under_another_root(
    ready: Issued, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = ProviderCA.create(tmp_path_factory.mktemp("other"), b"another passphrase")
    with session_on(ready.card) as session:
        result = user.authenticate_card(session, other.certificate)
    assert not result.genuine


@pytest.mark.parametrize(
    "length",
    [c.INTERNAL_AUTH_CHALLENGE_MIN - 1, c.INTERNAL_AUTH_CHALLENGE_MAX + 1],
    ids=["short", "long"],
)
def test_internal_authenticate_challenge_length_refused(ready: Issued, length: int) -> None:
    with session_on(ready.card) as session:
        apdu = Apdu(c.CLA_ISO7816, c.INS_INTERNAL_AUTHENTICATE, 0, 0, bytes(length), 256)
        assert transceive(session, apdu)[1] == c.SW_WRONG_LENGTH


def test_internal_authenticate_works_before_personalization(
    sim_cards: list[Any], ca: ProviderCA, issuer: ec.EllipticCurvePrivateKey
) -> None:
    issued = issue(sim_cards[-1], ca, issuer)
    with session_on(issued.card) as session:
        assert user.authenticate_card(session, ca.certificate).genuine
        assert len(session.get_challenge()) == c.CHALLENGE_LENGTH
        assert sw_of(lambda: session.user_public_key()) == c.SW_REFERENCED_DATA_NOT_FOUND
