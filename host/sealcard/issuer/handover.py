"""Stock from initialized cards in the issuer's own readers (`issuer pack import-cards`, for a
lab without a provider): each card's attestation checked against the provider root.

Between real parties, packs, batches, results and confirmations travel as sealed files
(parties/issuer_exchange.py, docs/files.md).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sealcard.card.constants import State
from sealcard.formats.attestation import AttestationReport, CardPublicData
from sealcard.issuer.errors import IssuerError
from sealcard.issuer.records import CardInit


class CardIntakeError(IssuerError):
    """A card cannot join the issuer's stock (not genuine, not closed, or not for this issuer)."""


def _spki(key: object) -> bytes:
    public_bytes = getattr(key, "public_bytes", None)
    if public_bytes is None:
        raise CardIntakeError("the card reported no such public key")
    der: bytes = public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return der


def card_init_from_public_data(
    data: CardPublicData,
    report: AttestationReport,
    issuer_public_key: ec.EllipticCurvePublicKey,
) -> CardInit:
    """A verified stock record from a card's public data, or CardIntakeError saying why not."""
    serial = data.serial.hex().upper() if data.serial else "?"
    if not report.genuine:
        reasons = "; ".join(f"{f.name}: {f.reason}" for f in report.failures)
        raise CardIntakeError(f"card {serial} is not genuine: {reasons}")
    if data.state != State.INITIALIZED:
        raise CardIntakeError(f"card {serial} is not closed (state {data.state:#04x})")
    if data.serial is None:
        raise CardIntakeError("card has no serial")
    ours = issuer_public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    theirs = (
        data.issuer_public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        if data.issuer_public_key is not None
        else b""
    )
    if theirs != ours:
        raise CardIntakeError(f"card {serial} holds another issuer's public key")

    def der(cert: x509.Certificate | None) -> bytes | None:
        return None if cert is None else cert.public_bytes(Encoding.DER)

    return CardInit(
        serial=data.serial,
        device_public_key_der=_spki(data.device_public_key),
        issuer_auth_public_key_der=_spki(data.issuer_auth_public_key),
        device_key_cert=der(data.device_key_certificate),
        issuer_auth_cert=der(data.issuer_auth_key_certificate),
        signed_device_key=data.signed_device_key,
        verified=True,
    )
