"""A party key in the test's memory (the product keeps them in PKCS#11 tokens): for the
format tests, which need keys but no token."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sealcard.formats.party_cert import make_party_certificate
from sealcard.formats.party_csv import PartyName, Role


class SoftPartyKey:
    """EC P-256 key and its party certificate; signs and does ECDH like TokenPartyKey."""

    def __init__(self, role: Role, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.role = role
        self.name = name
        self.certificate: x509.Certificate = make_party_certificate(
            self.key.public_key(), self.sign, role, name
        )

    @property
    def party(self) -> PartyName:
        return PartyName(self.role, self.name)

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))

    def ecdh(self, peer: ec.EllipticCurvePublicKey) -> bytes:
        return self.key.exchange(ec.ECDH(), peer)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)
