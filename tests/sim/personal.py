"""Helpers shared by the issue-3 sim tests: step A, sealing, raw APDUs, card snapshots."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import coincurve
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from simcards import reset_blank

from sealcard.card.constants import DataObject
from sealcard.card.errors import NotFoundError
from sealcard.card.session import SealcardSession
from sealcard.crypto.sealed_blob import SealedPayload, assemble, seal, signed_message
from sealcard.parties.provider import InitResult, ProviderCA, initialize_card
from sealcard.transport.apdu import Apdu
from sealcard.transport.errors import ApduError
from sealcard.transport.pcsc import PcscConnection

PIN = b"482916"
PUK = b"73519264"
NEW_PIN = b"5555"
WRONG_PIN = b"000000"
WRONG_PUK = b"00000000"


def signer_of(key: ec.EllipticCurvePrivateKey) -> Callable[[bytes], bytes]:
    return lambda message: key.sign(message, ec.ECDSA(hashes.SHA256()))


def point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


@contextmanager
def session_on(card: Any, *, extended: bool = False) -> Iterator[SealcardSession]:
    with PcscConnection.open(card.reader) as connection:
        yield SealcardSession(connection, extended=extended)


@dataclass
class Issued:
    """One card after step A, and the keys the issuer side holds for it."""

    card: Any
    init: InitResult
    issuer: ec.EllipticCurvePrivateKey
    device_auth: ec.EllipticCurvePrivateKey
    user_key: coincurve.PrivateKey

    @property
    def serial(self) -> bytes:
        return self.init.serial

    def payload(self, pin: bytes | None = PIN, puk: bytes | None = PUK) -> SealedPayload:
        return SealedPayload(self.user_key.secret, point(self.device_auth), pin, puk)

    def blob(self, pin: bytes | None = PIN, puk: bytes | None = PUK) -> bytes:
        return seal(
            self.payload(pin, puk),
            self.serial,
            self.init.device_public_key,
            signer_of(self.issuer),
        )

    def raw_blob(self, plaintext: bytes, *, device_key: rsa.RSAPublicKey | None = None) -> bytes:
        """A blob whose (issuer-signed) ciphertext holds any bytes, even an invalid payload."""
        key = device_key or self.init.device_public_key
        oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
        ciphertext = key.encrypt(plaintext, oaep)
        signature = signer_of(self.issuer)(signed_message(self.serial, ciphertext))
        return assemble(self.serial, ciphertext, signature)

    def user_point(self) -> bytes:
        return bytes(self.user_key.public_key.format(compressed=False))


def issue(
    card: Any, ca: ProviderCA, issuer: ec.EllipticCurvePrivateKey, serial: bytes | None = None
) -> Issued:
    """Blank the card, run step A with `issuer`'s public key injected, make the issuer keys."""
    reset_blank(card)
    with session_on(card) as session:
        init = initialize_card(session, ca, issuer.public_key(), serial)
    return Issued(
        card, init, issuer, ec.generate_private_key(ec.SECP256R1()), coincurve.PrivateKey()
    )


def personalized(issued: Issued, pin: bytes | None = PIN, puk: bytes | None = PUK) -> Issued:
    with session_on(issued.card) as session:
        session.personalize(issued.blob(pin, puk))
    return issued


def transceive(session: SealcardSession, apdu: Apdu) -> tuple[bytes, int]:
    """Send one APDU below the command layer; (data, SW) without raising."""
    return session.protocol.transceive(apdu)


def sw_of(action: Callable[[], object]) -> int:
    """The status word an action's ApduError carries (AssertionError if it succeeds)."""
    try:
        action()
    except ApduError as exc:
        return exc.sw
    raise AssertionError("the card accepted the command")


def snapshot(session: SealcardSession) -> dict[str, object]:
    """Every public object the card answers (raw bytes, or the SW it gives instead)."""
    out: dict[str, object] = {}
    for obj in DataObject:
        try:
            out[obj.name] = session.get_data(obj)
        except NotFoundError:
            out[obj.name] = None
        except ApduError as exc:
            out[obj.name] = f"SW {exc.sw:04X}"
    return out
