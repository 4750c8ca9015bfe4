"""The card takes the sealed blob's issuer signature only in low-S form (docs/sealed-blob.md):
the high-S twin (r, n - s) of a good signature verifies as ECDSA, yet it is refused like a bad
signature, and the card stays as it was."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from personal import issue, session_on, snapshot

from sealcard.card import constants as c
from sealcard.card.errors import BadSignatureError
from sealcard.crypto import sealed_blob
from sealcard.crypto.low_s import P256_ORDER, is_low_s
from sealcard.parties.provider import ProviderCA

pytestmark = pytest.mark.sim


def high_s_twin(blob: bytes) -> bytes:
    parsed = sealed_blob.parse(blob)
    r, s = decode_dss_signature(parsed.signature)
    twin = encode_dss_signature(r, P256_ORDER - s)
    return parsed.signed_message + bytes([len(twin)]) + twin


def test_high_s_twin_refused_low_s_accepted(
    sim_cards: list[Any], ca: ProviderCA, issuer: ec.EllipticCurvePrivateKey
) -> None:
    issued = issue(sim_cards[-1], ca, issuer)
    blob = issued.blob()
    twin = high_s_twin(blob)
    assert is_low_s(sealed_blob.parse(blob).signature)
    issuer.public_key().verify(  # the twin's signature is valid ECDSA
        sealed_blob.parse(twin).signature,
        sealed_blob.parse(twin).signed_message,
        ec.ECDSA(hashes.SHA256()),
    )
    with session_on(issued.card) as session:
        before = snapshot(session)
        with pytest.raises(BadSignatureError) as refused:
            session.personalize(twin)
        assert refused.value.sw == c.SW_SECURITY_STATUS_NOT_SATISFIED
        assert snapshot(session) == before
        assert session.refresh_status().state == c.State.INITIALIZED
        session.personalize(blob)
        assert session.refresh_status().state == c.State.PERSONALIZED
