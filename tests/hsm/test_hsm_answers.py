"""What the issuer system sees of the issuer HSM service's answers: sealed blobs carry a low-S
issuer signature (the card refuses the high-S form; docs/sealed-blob.md), whatever s the
PKCS#11 token gave; a refusal reads as one sentence."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sealcard.crypto import sealed_blob
from sealcard.crypto.low_s import is_low_s
from sealcard.hsm.errors import RequestRefused
from sealcard.hsm.issuer_client import IssuerHsmClient, SealRequest
from sealcard.hsm.system_hsm import DeviceAuthKeys

pytestmark = pytest.mark.hsm

BLOBS = 24
"""With random s, 24 blobs all low by chance would be 1 in 16 million."""


def test_every_sealed_blob_is_low_s(client: IssuerHsmClient, auth_keys: DeviceAuthKeys) -> None:
    device_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = device_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    requests = [
        SealRequest(
            order_id=f"low-s-{i}",
            card_serial=(0x10C5_0000 + i).to_bytes(8, "big"),
            device_public_key_der=der,
            device_auth_public_key=auth_keys.generate()[0],
            derivation_path=f"m/44'/0'/0'/0/{900 + i}",
            user_name=f"User {i}",
            user_address=f"{i} Low Street",
            pin_source="none",
            mailer_id=None,
        )
        for i in range(BLOBS)
    ]
    issuer_key = client.issuer_public_key()
    for result in client.seal_batch(requests):
        parsed = sealed_blob.verify_signature(result.sealed_blob, issuer_key)
        assert is_low_s(parsed.signature)


def test_a_refusal_names_its_reason_once(
    client: IssuerHsmClient, auth_keys: DeviceAuthKeys
) -> None:
    """A refusal, of one card or of a whole request, reads "reason: message" with its reason
    once (a seal used to fail with "malformed: malformed: ...")."""
    device_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = device_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    bad = SealRequest(
        order_id="no-mailer",
        card_serial=bytes(8),
        device_public_key_der=der,
        device_auth_public_key=auth_keys.generate()[0],
        derivation_path="m/44'/0'/0'/0/999",
        user_name="U",
        user_address="A",
        pin_source="hsm",
        mailer_id="nobody",
    )
    (result,) = client.seal_batch([bad])  # one card refused, alone (issue 7)
    assert result.refusal is not None and result.refusal.reason == "unknown-mailer"
    card_text = str(result.refusal)
    assert card_text.startswith("unknown-mailer: ")
    assert card_text.count("unknown-mailer:") == 1, card_text
    with pytest.raises(RequestRefused) as refused:  # a whole request refused
        client.call("seal-batch", {"cards": "not a list"})
    text = str(refused.value)
    assert text.startswith(f"{refused.value.reason}: ")
    assert text.count(f"{refused.value.reason}:") == 1, text
