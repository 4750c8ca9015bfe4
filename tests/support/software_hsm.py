"""FOR TESTS AND DEVELOPMENT ONLY: the two HSM roles done in software, in this process.

`SoftwareDeviceAuthKeys` and `SoftwareIssuerHsm` have the contracts of
`sealcard.hsm.system_hsm.DeviceAuthKeys` and `sealcard.hsm.issuer_client.IssuerHsmClient`,
so the issuer system's records and batch logic can be tested (and killed and resumed) without
SoftHSM2 and the issuer HSM service. They hold a seed and private keys in the issuer's memory,
which the real design forbids; nothing in the CLI uses them, and they live with the
tests, not in the package.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sealcard.crypto import bip32, pin, sealed_blob
from sealcard.hsm.issuer_client import SealRequest, SealResult
from sealcard.issuer.errors import IssuerError


class SoftwareDeviceAuthKeys:
    """FOR TESTS AND DEVELOPMENT ONLY: device authentication keys without an HSM.

    Same contract as `sealcard.hsm.system_hsm.DeviceAuthKeys`: `generate()` returns the public
    point and the private key wrapped (AES key wrap with padding, RFC 5649) under a key
    encryption key that lives only in this object's memory.
    """

    def __init__(self) -> None:
        self._kek = os.urandom(32)

    def generate(self) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        point = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return point, keywrap.aes_key_wrap_with_padding(self._kek, der)

    def generate_many(self, count: int, threads: int = 1) -> list[tuple[bytes, bytes]]:
        return [self.generate() for _ in range(count)]

    def unwrap(self, wrapped: bytes) -> ec.EllipticCurvePrivateKey:
        """The private key back (tests check it matches the stored public point)."""
        key = serialization.load_der_private_key(
            keywrap.aes_key_unwrap_with_padding(self._kek, wrapped), None
        )
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise IssuerError("wrapped key is not an EC key")
        return key

    def sign(self, wrapped: bytes, data: bytes) -> bytes:
        """ECDSA P-256 SHA-256 with an unwrapped key (DER)."""
        return self.unwrap(wrapped).sign(data, ec.ECDSA(hashes.SHA256()))


FAKE_LETTER_MAGIC = b"FAKE-PIN-LETTER\x00"


class SoftwareIssuerHsm:
    """FOR TESTS AND DEVELOPMENT ONLY: the issuer HSM's sealing done in this process.

    Holds a BIP32 seed and the issuer key in memory, which the real design forbids outside the
    issuer HSM service; it exists so the issuer system's records and batch logic can be tested
    without SoftHSM2 and a service. Its PIN "letter" is a placeholder that holds no PIN.
    """

    def __init__(self, seed: bytes, issuer_key: ec.EllipticCurvePrivateKey | None = None) -> None:
        self._root = bip32.ExtendedPrivateKey.from_seed(seed)
        self._issuer_key = issuer_key or ec.generate_private_key(ec.SECP256R1())
        self._parents: dict[str, bip32.ExtendedPrivateKey] = {}
        self._rsa: dict[bytes, rsa.RSAPublicKey] = {}
        self.batches = 0

    def issuer_public_key(self) -> ec.EllipticCurvePublicKey:
        return self._issuer_key.public_key()

    def _derive(self, path: str) -> bip32.ExtendedPrivateKey:
        parent_path, _, last = path.rpartition("/")
        parent = self._parents.get(parent_path)
        if parent is None:
            parent = self._root.derive(parent_path)
            self._parents[parent_path] = parent
        return parent.derive(f"m/{last}")

    def _device_key(self, der: bytes) -> rsa.RSAPublicKey:
        key = self._rsa.get(der)
        if key is None:
            loaded = serialization.load_der_public_key(der)
            if not isinstance(loaded, rsa.RSAPublicKey):
                raise IssuerError("device key is not RSA")
            key = self._rsa[der] = loaded
        return key

    def _sign(self, message: bytes) -> bytes:
        return self._issuer_key.sign(message, ec.ECDSA(hashes.SHA256()))

    def seal_batch(self, requests: Sequence[SealRequest]) -> list[SealResult]:
        results: list[SealResult] = []
        for req in requests:
            child = self._derive(req.derivation_path)
            with_pin = req.pin_source == "hsm"
            payload = sealed_blob.SealedPayload(
                user_private_key=child.private_key,
                device_auth_public_key=req.device_auth_public_key,
                pin=pin.generate_pin(os.urandom) if with_pin else None,
                puk=pin.generate_puk(os.urandom) if with_pin else None,
            )
            blob = sealed_blob.seal(
                payload, req.card_serial, self._device_key(req.device_public_key_der), self._sign
            )
            letter = FAKE_LETTER_MAGIC + req.card_serial if with_pin else None
            results.append(SealResult(req.order_id, blob, child.public_key, letter))
        self.batches += 1
        return results
