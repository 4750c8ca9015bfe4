"""The issuer HSM's operations, as one worker process of the service runs them (no socket).

One :class:`IssuerHsm` per worker process, single-threaded, with its own PKCS#11 session:
derive the user key, PIN and PUK from the token's RNG, the sealed blob (RSA-OAEP to the card,
signed by the issuer key) and the PIN letter (CMS to the mailer, signed by the issuer key).

The issuer key signs in this process when it is the seed's issuer key (homes made since the
issuer key comes from the seed, docs/hsm.md): its key schedule is set up once per worker, not
for every signature as in SoftHSM. In an older home (a random key only the token can use),
every signature is a ``C_Sign`` in the token, as before.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pkcs11 import Attribute, ObjectClass

from sealcard.crypto import sealed_blob
from sealcard.crypto.bip32 import parse_path
from sealcard.crypto.pin import generate_pin, generate_puk
from sealcard.hsm import _cryptoki, protocol
from sealcard.hsm.derivation import KeyDeriver
from sealcard.hsm.errors import RequestRefused
from sealcard.hsm.issuer_keys import ISSUER_KEY_LABEL, MAILER_PREFIX
from sealcard.hsm.pin_letter import (
    PinLetterData,
    SignerCertificate,
    build_pin_letter,
    key_identifier,
)
from sealcard.hsm.token import PooledSession, raw_to_der

RANDOM_CHUNK = 4096
MAX_BATCH = 4096
PIN_SOURCE_HSM = "hsm"
PIN_SOURCE_NONE = "none"
MAILER_ID_MAX = 64
MAILER_KEY_MIN_BITS = 2048
_ECDSA = _cryptoki.MechanismSpec(_cryptoki.CKM_ECDSA)
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())

log = logging.getLogger("sealcard.hsm.service")


class Pkcs11Clock:
    """Time and count of this worker's PKCS#11 calls (reported per request to the metrics)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def take(self) -> tuple[float, int]:
        """(seconds, calls) since the last take."""
        out = (self.seconds, self.calls)
        self.seconds, self.calls = 0.0, 0
        return out


class Signer(Protocol):
    """ECDSA P-256 over SHA-256 with the issuer key: DER signature."""

    def __call__(self, data: bytes) -> bytes: ...


class SoftwareIssuerSigner:
    """The seed's issuer key in this process: set up once, then a signature is one ECDSA."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "SoftwareIssuerSigner(<issuer key>)"

    def __call__(self, data: bytes) -> bytes:
        return self._key.sign(data, _ECDSA_SHA256)


class TokenIssuerSigner:
    """The issuer key in the token: C_SignInit + C_Sign on this session's copy of it."""

    def __init__(self, session: PooledSession, clock: Pkcs11Clock) -> None:
        self._raw = session.raw
        self._key = session.copy_handle(ObjectClass.PRIVATE_KEY, ISSUER_KEY_LABEL)
        self._clock = clock

    def __call__(self, data: bytes) -> bytes:
        digest = hashlib.sha256(data).digest()
        t0 = time.perf_counter()
        signature = self._raw.sign(_ECDSA, self._key, digest)
        self._clock.seconds += time.perf_counter() - t0
        self._clock.calls += 1
        return raw_to_der(signature)


class TokenRandom:
    """Token RNG bytes, fetched in chunks (one C_GenerateRandom per 4 KiB)."""

    def __init__(self, session: PooledSession, clock: Pkcs11Clock) -> None:
        self._raw = session.raw
        self._buffer = b""
        self._clock = clock

    def __call__(self, count: int) -> bytes:
        if len(self._buffer) < count:
            t0 = time.perf_counter()
            self._buffer += self._raw.generate_random(max(RANDOM_CHUNK, count))
            self._clock.seconds += time.perf_counter() - t0
            self._clock.calls += 1
        out, self._buffer = self._buffer[:count], self._buffer[count:]
        return out


@dataclass(frozen=True)
class _Mailer:
    key: rsa.RSAPublicKey
    skid: bytes


def check_mailer_id(mailer_id: str) -> None:
    """A mailer id is 1..64 printable characters; RequestRefused(malformed) otherwise."""
    if not mailer_id or len(mailer_id) > MAILER_ID_MAX or not mailer_id.isprintable():
        raise RequestRefused(
            protocol.REFUSED_MALFORMED, f"a mailer id is 1 to {MAILER_ID_MAX} printable characters"
        )


def mailer_key(der: bytes) -> tuple[rsa.RSAPublicKey, bytes]:
    """(key, subject key identifier) of a mailer's DER SubjectPublicKeyInfo; RequestRefused
    (malformed) unless it is an RSA key of 2048 bits or more."""
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        raise RequestRefused(
            protocol.REFUSED_MALFORMED, "the mailer key is not a DER SubjectPublicKeyInfo"
        ) from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < MAILER_KEY_MIN_BITS:
        raise RequestRefused(
            protocol.REFUSED_MALFORMED, f"a mailer key is RSA of {MAILER_KEY_MIN_BITS} bits or more"
        )
    return key, key_identifier(key)


class CardRefused(Exception):  # noqa: N818 - a refusal of one card, not an error of the service
    """One card of a seal-batch cannot be sealed (``reason`` is one of protocol.CARD_*); the
    rest of the batch goes on and this card's result carries the reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def sign_blob(sign: Callable[[bytes], bytes], serial: bytes, ciphertext: bytes) -> bytes:
    """The one place the issuer HSM signs a sealed blob: the assembled blob."""
    signature = sign(sealed_blob.signed_message(serial, ciphertext))
    return sealed_blob.assemble(serial, ciphertext, signature)


class IssuerHsm:
    """The issuer HSM's operations in one worker (single-threaded, one PKCS#11 session)."""

    def __init__(
        self,
        session: PooledSession,
        deriver: KeyDeriver,
        certificate_der: bytes,
        issuer_public_key: ec.EllipticCurvePublicKey,
        signer: Signer,
        clock: Pkcs11Clock,
    ) -> None:
        self.session = session
        self.deriver = deriver
        self.certificate = SignerCertificate.load(certificate_der)
        self.issuer_public_key = issuer_public_key
        self.sign = signer
        self.clock = clock
        self.random = TokenRandom(session, clock)
        self._mailers: dict[str, _Mailer] = {}
        self._mailers_lock = threading.Lock()
        self.card_refusals: dict[str, int] = {}
        self.cards_sealed = 0
        self.reload_mailers()

    def __repr__(self) -> str:
        return f"IssuerHsm(signer={self.sign!r})"

    # ---- mailers

    def reload_mailers(self) -> None:
        """Read every mailer key from the token (another worker may have added one)."""
        found: dict[str, _Mailer] = {}
        for obj in self.session.session.get_objects({Attribute.CLASS: ObjectClass.DATA}):
            label = str(obj[Attribute.LABEL])
            if not label.startswith(MAILER_PREFIX):
                continue
            mailer_id = label[len(MAILER_PREFIX) :]
            try:
                found[mailer_id] = _Mailer(*mailer_key(bytes(obj[Attribute.VALUE])))
            except RequestRefused:  # a stored object this build cannot use: skip it
                log.warning("skipped the stored key of mailer %r: not usable", mailer_id)
        with self._mailers_lock:
            self._mailers = found

    def register_mailer(self, mailer_id: str, public_key_der: bytes) -> None:
        """Keep a mailer's public key as a token object (replacing an older one)."""
        check_mailer_id(mailer_id)
        key = mailer_key(public_key_der)  # refused before anything is written
        label = MAILER_PREFIX + mailer_id
        session = self.session.session
        for old in list(session.get_objects({Attribute.LABEL: label})):
            old.destroy()
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.DATA,
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.MODIFIABLE: False,
                Attribute.LABEL: label,
                Attribute.APPLICATION: "sealcard mailer public key",
                Attribute.VALUE: public_key_der,
            }
        )
        with self._mailers_lock:
            self._mailers[mailer_id] = _Mailer(*key)

    def mailer_ids(self) -> list[str]:
        with self._mailers_lock:
            return sorted(self._mailers)

    # ---- sealing

    def seal_batch(self, cards: list[Any]) -> list[dict[str, Any]]:
        """Seal every card of a batch; a card that cannot be sealed gets its reason alone."""
        if len(cards) > MAX_BATCH:
            raise RequestRefused(protocol.REFUSED_MALFORMED, f"at most {MAX_BATCH} cards a batch")
        results: list[dict[str, Any]] = []
        for card in cards:
            try:
                results.append(self._seal_one(card))
                self.cards_sealed += 1
            except CardRefused as refused:
                order_id = card.get("order_id") if isinstance(card, dict) else None
                results.append(
                    {
                        "order_id": None if order_id is None else str(order_id),
                        "error": {"reason": refused.reason, "message": str(refused)},
                    }
                )
                self.card_refusals[refused.reason] = self.card_refusals.get(refused.reason, 0) + 1
        return results

    def _seal_one(self, card: Any) -> dict[str, Any]:
        if not isinstance(card, dict):
            raise CardRefused(protocol.CARD_MALFORMED, "a card entry is a JSON object")
        try:
            order_id = str(card["order_id"])
            serial = bytes.fromhex(card["card_serial"])
            device_der = base64.b64decode(card["device_public_key_der"], validate=True)
            auth_key = bytes.fromhex(card["device_auth_public_key"])
            path = parse_path(card["derivation_path"])
            pin_source = card.get("pin_source", PIN_SOURCE_NONE)
            mailer_id = card.get("mailer_id")
            user_name = str(card.get("user_name", ""))
            user_address = str(card.get("user_address", ""))
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            field = f" ({exc.args[0]!r})" if isinstance(exc, KeyError) else ""
            raise CardRefused(protocol.CARD_MALFORMED, f"bad card entry{field}") from None
        try:
            device_key = serialization.load_der_public_key(device_der)
        except (ValueError, UnsupportedAlgorithm):
            raise CardRefused(
                protocol.CARD_BAD_DEVICE_KEY, "the device key is not a DER SubjectPublicKeyInfo"
            ) from None
        if not isinstance(device_key, rsa.RSAPublicKey):
            raise CardRefused(protocol.CARD_BAD_DEVICE_KEY, "the device key is not RSA")
        if pin_source not in (PIN_SOURCE_HSM, PIN_SOURCE_NONE):
            raise CardRefused(protocol.CARD_MALFORMED, f"bad pin_source {pin_source!r}")
        mailer: _Mailer | None = None
        if pin_source == PIN_SOURCE_HSM:
            with self._mailers_lock:
                mailer = self._mailers.get(str(mailer_id))
            if mailer is None:
                raise CardRefused(
                    protocol.CARD_UNKNOWN_MAILER,
                    f"this issuer HSM has no mailer {mailer_id!r} (issuer hsm mailer add)",
                )
        private_key, public_key = self.deriver.derive(path)
        pin = puk = None
        if pin_source == PIN_SOURCE_HSM:
            pin, puk = generate_pin(self.random), generate_puk(self.random)
        payload = sealed_blob.SealedPayload(private_key, auth_key, pin, puk)
        try:
            # The device authentication key comes from the issuer-system HSM that just made
            # it (in a signed request): its curve point is not checked again here; the card
            # checks it before it accepts the blob.
            ciphertext = sealed_blob.encrypt_payload(payload, device_key, check_point=False)
            blob = sign_blob(self.sign, serial, ciphertext)
        except sealed_blob.SealedBlobError as exc:
            bad_key = "device key" in str(exc)
            reason = protocol.CARD_BAD_DEVICE_KEY if bad_key else protocol.CARD_MALFORMED
            raise CardRefused(reason, str(exc)) from None
        letter = None
        if mailer is not None and pin is not None and puk is not None:
            data = PinLetterData(serial, user_name, user_address, pin, puk)
            letter = build_pin_letter(data, mailer.key, self.sign, self.certificate, mailer.skid)
        return {
            "order_id": order_id,
            "sealed_blob": base64.b64encode(blob).decode("ascii"),
            "user_public_key": public_key.hex(),
            "pin_letter": None if letter is None else base64.b64encode(letter).decode("ascii"),
        }

    # ---- requests

    def handle(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        """Carry out one verified request; RequestRefused for anything malformed."""
        if op == "ping":
            return {"ok": True}
        if op == "issuer-public-key":
            der = self.issuer_public_key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            return {
                "public_key_der": base64.b64encode(der).decode("ascii"),
                "certificate_der": base64.b64encode(self.certificate.der).decode("ascii"),
            }
        if op == "xpub":
            try:
                path = parse_path(str(body.get("path", "")))
            except ValueError as exc:
                raise RequestRefused(protocol.REFUSED_MALFORMED, str(exc)) from None
            return {"xpub": self.deriver.xpub(path)}
        if op == "seal-batch":
            cards = body.get("cards")
            if not isinstance(cards, list):
                raise RequestRefused(protocol.REFUSED_MALFORMED, "seal-batch needs cards")
            return {"results": self.seal_batch(cards)}
        if op == "register-mailer":
            try:
                der = base64.b64decode(str(body["public_key_der"]), validate=True)
            except (KeyError, ValueError):
                raise RequestRefused(
                    protocol.REFUSED_MALFORMED, "public_key_der must be base64 DER"
                ) from None
            self.register_mailer(str(body.get("mailer_id", "")), der)
            return {"mailers": self.mailer_ids()}
        if op == "list-mailers":
            return {"mailers": self.mailer_ids()}
        raise RequestRefused(protocol.REFUSED_UNKNOWN_OP, f"unknown operation {op!r}")


#: The ops a worker carries out (service-key is answered by the service's main process).
WORKER_OPS = frozenset(
    {"ping", "issuer-public-key", "xpub", "seal-batch", "register-mailer", "list-mailers"}
)
