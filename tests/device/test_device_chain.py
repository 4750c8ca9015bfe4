"""The whole chain on one blank real card (opt-in; see conftest.py and docs/real-cards.md).

Provider step A with a throw-away root CA, the issuer's sealing of a user key to that card
(the same `seal` the issuer HSM service runs), the bureau's PERSONALIZE, then the user's and
the issuer's commands, ending with TERMINATE. The card is used up afterwards.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import coincurve
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sealcard.card import constants as c
from sealcard.card.errors import InvalidPinError, WrongStateError
from sealcard.card.secp256k1 import verify_hash_signature
from sealcard.card.session import SealcardSession
from sealcard.crypto.sealed_blob import SealedPayload, seal
from sealcard.parties.bureau import personalize_card
from sealcard.parties.platform_check import check_platform
from sealcard.parties.provider import ProviderCA, check_card, initialize_card
from sealcard.parties.user import authenticate_card
from sealcard.transport.pcsc import PcscConnection

pytestmark = pytest.mark.device

PIN = b"246810"
PUK = b"13579135"
NEW_PIN = b"975310"
WRONG_PIN = b"000000"
DIGEST = hashlib.sha256(b"sealcard device chain").digest()


def _signer(key: ec.EllipticCurvePrivateKey):  # type: ignore[no-untyped-def]
    return lambda message: key.sign(message, ec.ECDSA(hashes.SHA256()))


def test_the_whole_chain_on_one_blank_card(blank_device_reader: str, tmp_path: Path) -> None:
    ca = ProviderCA.create(tmp_path / "ca", b"device chain passphrase")
    issuer = ec.generate_private_key(ec.SECP256R1())
    device_auth = ec.generate_private_key(ec.SECP256R1())
    user_key = coincurve.PrivateKey()

    with PcscConnection.open(blank_device_reader, exclusive=True) as connection:
        platform = check_platform(connection, atr=connection.atr)
        assert platform.can_host is True, [c_.detail for c_ in platform.checks]

        session = SealcardSession(connection)
        assert session.status.state == c.State.BLANK, "the applet must be freshly installed"

        # A. provider: keys on the card, certificates, closed; genuine under the root
        init = initialize_card(session, ca, issuer.public_key())
        assert init.status.state == c.State.INITIALIZED
        _, report = check_card(session, ca.certificate)
        assert report.genuine, report

        # K-L. issuer: the user key sealed to this card's device key, signed by the issuer
        auth_point = device_auth.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint
        )
        blob = seal(
            SealedPayload(user_key.secret, auth_point, PIN, PUK),
            init.serial,
            init.device_public_key,
            _signer(issuer),
        )

        # Q. bureau
        result = personalize_card(session, blob)
        assert result.status.state == c.State.PERSONALIZED
        expected_user_key = user_key.public_key.format(compressed=False)
        if c.Capability.EC_PLAIN_XY in session.capabilities:
            card_point = result.user_public_key.public_bytes(
                Encoding.X962, PublicFormat.UncompressedPoint
            )
            assert card_point == expected_user_key

        # the user: PIN, a transaction signature, the card proves it is genuine
        with pytest.raises(InvalidPinError):
            session.verify_pin(WRONG_PIN)
        session.verify_pin(PIN)
        user_public = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256K1(), expected_user_key
        )
        verify_hash_signature(user_public, DIGEST, session.sign_hash(DIGEST))
        assert authenticate_card(session, ca.certificate).genuine

        # the issuer: a PIN reset, then TERMINATE; the user key is gone
        session.issuer_reset_pin(NEW_PIN, _signer(device_auth))
        session.verify_pin(NEW_PIN)
        status = session.issuer_terminate(_signer(device_auth))
        assert status.state == c.State.TERMINATED
        with pytest.raises(WrongStateError):
            session.sign_hash(DIGEST)
