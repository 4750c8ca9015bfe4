"""FOR TESTS ONLY: a card made in software, with provider certificates, for API tests that
need no reader: its public data as an initialized card reports it, and its answers to
INTERNAL AUTHENTICATE. Its private keys live in the test's memory (a real card's never
leave it)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sealcard.card.constants import State
from sealcard.crypto import sealed_blob
from sealcard.formats.attestation import CardPublicData, internal_authenticate_message
from sealcard.formats.certificates import CardKeyRole
from sealcard.parties.provider import ProviderCA

_DEVICE_KEYS: list[rsa.RSAPrivateKey] = []


def _device_key() -> rsa.RSAPrivateKey:
    """RSA-2048 keys are slow to make: tests draw from a small pool (real cards never share)."""
    if len(_DEVICE_KEYS) < 4:
        _DEVICE_KEYS.append(rsa.generate_private_key(65537, 2048))
        return _DEVICE_KEYS[-1]
    _DEVICE_KEYS.append(_DEVICE_KEYS.pop(0))  # round robin: consecutive cards differ
    return _DEVICE_KEYS[-1]


@dataclass
class SoftCard:
    serial: bytes
    device_key: rsa.RSAPrivateKey
    auth_key: ec.EllipticCurvePrivateKey
    data: CardPublicData

    def answer(self, challenge: bytes) -> bytes:
        """What INTERNAL AUTHENTICATE answers."""
        message = internal_authenticate_message(self.serial, challenge)
        return self.auth_key.sign(message, ec.ECDSA(hashes.SHA256()))

    def open(self, blob: bytes, issuer: ec.EllipticCurvePublicKey) -> sealed_blob.SealedPayload:
        """Open a blob as the card would (signature first)."""
        return sealed_blob.open_blob(blob, self.serial, self.device_key, issuer)

    def personalized(self) -> SoftCard:
        return replace(self, data=replace(self.data, state=State.PERSONALIZED))


def make_card(
    ca: ProviderCA, issuer_public_key: ec.EllipticCurvePublicKey, serial: bytes | None = None
) -> SoftCard:
    serial = serial or os.urandom(8)
    device = _device_key()
    auth = ec.generate_private_key(ec.SECP256R1())
    data = CardPublicData(
        serial=serial,
        state=State.INITIALIZED,
        device_public_key=device.public_key(),
        issuer_auth_public_key=auth.public_key(),
        issuer_public_key=issuer_public_key,
        device_key_certificate=ca.issue(CardKeyRole.DEVICE, device.public_key(), serial),
        issuer_auth_key_certificate=ca.issue(CardKeyRole.ISSUER_AUTH, auth.public_key(), serial),
    )
    return SoftCard(serial, device, auth, data)


__all__ = ["SoftCard", "make_card"]
