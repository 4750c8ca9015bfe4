"""FOR TESTS AND DEVELOPMENT ONLY: fabricated packs of cards that exist nowhere.

A real pack comes from the card provider with certificates the issuer verifies. A fabricated
pack has fresh key pairs made here, no certificates, and is imported with source "fake" so
the audit log and `issuer status` say so. RSA-2048 key generation is slow (about 50-150 ms
here), so `rsa_pool` lets large packs (benchmarks) cycle through a pool of RSA keys: then
several cards share a device key, which a real pack never does. Tests use distinct keys.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sealcard.issuer.errors import IssuerError
from sealcard.issuer.records import CardInit, Records

FAKE_SERIAL_LENGTH = 8
RSA_BITS = 2048
RSA_EXPONENT = 65537


@dataclass
class FakePack:
    """A fabricated pack, with the device private keys so tests can open the blobs."""

    pack_serial: str
    cards: list[CardInit]
    device_keys: dict[bytes, rsa.RSAPrivateKey] = field(repr=False)


def _spki(key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fabricate_pack(
    count: int, pack_serial: str | None = None, *, rsa_pool: int | None = None
) -> FakePack:
    """`count` fake cards with random 8-byte serials and fresh keys (RSA keys from a pool of
    `rsa_pool` when given, else one per card)."""
    if count < 1:
        raise IssuerError("a pack needs at least one card")
    if rsa_pool is not None and rsa_pool < 1:
        raise IssuerError("rsa_pool must be at least 1")
    pool_size = count if rsa_pool is None else min(rsa_pool, count)
    pool = [rsa.generate_private_key(RSA_EXPONENT, RSA_BITS) for _ in range(pool_size)]
    pool_der = [_spki(k.public_key()) for k in pool]
    serials: set[bytes] = set()
    while len(serials) < count:
        serials.add(os.urandom(FAKE_SERIAL_LENGTH))
    cards: list[CardInit] = []
    keys: dict[bytes, rsa.RSAPrivateKey] = {}
    for i, serial in enumerate(sorted(serials)):
        auth = ec.generate_private_key(ec.SECP256R1())
        cards.append(CardInit(serial, pool_der[i % pool_size], _spki(auth.public_key())))
        keys[serial] = pool[i % pool_size]
    name = pack_serial or f"FAKE-{os.urandom(4).hex().upper()}"
    return FakePack(name, cards, keys)


def import_fake_pack(
    records: Records, count: int, pack_serial: str | None = None, *, rsa_pool: int | None = None
) -> FakePack:
    """Fabricate a pack and add it to the stock (source "fake")."""
    pack = fabricate_pack(count, pack_serial, rsa_pool=rsa_pool)
    records.import_pack(pack.pack_serial, pack.cards, source="fake")
    return pack
