"""Device initialization rows of cards that exist nowhere, attested by a real provider root:
what `issuer pack import` checks, at a scale no simulator reaches (tests and bench only).

All cards share one RSA device key and one EC issuer authentication key (key generation is
the slow part; real cards never share keys and the import does not look for that); each has
its own serial and its own two root-signed certificates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from functools import cache

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sealcard.formats.certificates import CardKeyRole
from sealcard.formats.party_csv import b64, serial_hex
from sealcard.parties.provider import ProviderCA


@cache
def _keys() -> tuple[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]:
    return rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP256R1())


def serial_of(index: int, prefix: int = 0) -> bytes:
    return prefix.to_bytes(4, "big") + index.to_bytes(4, "big")


def attested_rows(
    ca: ProviderCA, count: int, prefix: int = 0, now: dt.datetime | None = None
) -> Iterator[list[str]]:
    """`count` device-init rows (serials PREFIX||INDEX, 8 bytes), one at a time."""
    device, auth = _keys()
    device_der = device.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    auth_der = auth.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    for index in range(count):
        serial = serial_of(index, prefix)
        device_cert = ca.issue(CardKeyRole.DEVICE, device.public_key(), serial, now=now)
        auth_cert = ca.issue(CardKeyRole.ISSUER_AUTH, auth.public_key(), serial, now=now)
        yield [
            serial_hex(serial),
            b64(device_der),
            b64(auth_der),
            b64(device_cert.public_bytes(Encoding.DER)),
            b64(auth_cert.public_bytes(Encoding.DER)),
            "",
        ]
