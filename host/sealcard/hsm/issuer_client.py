"""The issuer system's side of the issuer HSM service: encrypted, signed requests over the Unix
socket, and signed replies checked against the issuer key."""

from __future__ import annotations

import base64
import select
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sealcard.errors import ConfigurationError
from sealcard.hsm import protocol
from sealcard.hsm.config import IssuerHsmSettings
from sealcard.hsm.errors import (
    AnswerLostError,
    BadResponseError,
    HsmError,
    RequestRefused,
    ServiceUnavailableError,
)

DEFAULT_TIMEOUT_S = 120.0


def issuer_key_from_certificate(data: bytes) -> ec.EllipticCurvePublicKey:
    """The EC public key of an issuer certificate (PEM or DER); HsmError if it is not one."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            certificate = x509.load_pem_x509_certificate(data)
        else:
            certificate = x509.load_der_x509_certificate(data)
    except ValueError:
        raise HsmError("not an X.509 issuer certificate") from None
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise HsmError("the issuer certificate does not hold an EC key")
    return key


def _same_key(a: ec.EllipticCurvePublicKey, b: ec.EllipticCurvePublicKey) -> bool:
    form = (serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return a.public_bytes(*form) == b.public_bytes(*form)


def _raise_for(status: int, reply: dict[str, Any]) -> None:
    if status == protocol.STATUS_REFUSED:
        raise RequestRefused(str(reply.get("reason")), str(reply.get("message")))
    if status != protocol.STATUS_OK:
        raise HsmError(f"the issuer HSM service failed: {reply.get('message')}")


class Signer(Protocol):
    """Signs request bytes (DER ECDSA P-256 SHA-256): a RequestSigner, or a test double."""

    def sign(self, data: bytes) -> bytes: ...


@dataclass(frozen=True)
class SealRequest:
    """One card to seal."""

    order_id: str
    card_serial: bytes
    device_public_key_der: bytes  # SubjectPublicKeyInfo DER, RSA-2048
    device_auth_public_key: bytes  # 65-byte uncompressed P-256 point
    derivation_path: str
    user_name: str
    user_address: str
    pin_source: str  # "hsm" | "none"
    mailer_id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "card_serial": self.card_serial.hex(),
            "device_public_key_der": base64.b64encode(self.device_public_key_der).decode(),
            "device_auth_public_key": self.device_auth_public_key.hex(),
            "derivation_path": self.derivation_path,
            "user_name": self.user_name,
            "user_address": self.user_address,
            "pin_source": self.pin_source,
            "mailer_id": self.mailer_id,
        }


@dataclass(frozen=True)
class CardRefusal:
    """Why the issuer HSM did not seal one card of a batch (``reason``: protocol.CARD_*)."""

    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


@dataclass(frozen=True)
class SealResult:
    """What the HSM returns for one card: the blob, the user's public key, the P2 letter; or,
    for a card it could not seal, only ``refusal`` (the rest of the batch is sealed)."""

    order_id: str
    sealed_blob: bytes
    user_public_key: bytes  # 33 bytes, compressed secp256k1
    pin_letter: bytes | None
    refusal: CardRefusal | None = None

    @classmethod
    def refused(cls, order_id: str, reason: str, message: str) -> SealResult:
        return cls(order_id, b"", b"", None, CardRefusal(reason, message))

    @classmethod
    def from_wire(cls, value: dict[str, Any]) -> SealResult:
        try:
            error = value.get("error")
            if error is not None:
                return cls.refused(
                    str(value["order_id"]), str(error["reason"]), str(error["message"])
                )
            letter = value.get("pin_letter")
            return cls(
                str(value["order_id"]),
                base64.b64decode(value["sealed_blob"]),
                bytes.fromhex(value["user_public_key"]),
                None if letter is None else base64.b64decode(letter),
            )
        except (KeyError, TypeError, ValueError):
            raise HsmError("the issuer HSM service sent a malformed seal result") from None


class IssuerHsmClient:
    """A client of the service: one connection per call in flight, kept for the next; thread-safe.

    Every request body is HPKE-encrypted to the service key that a signed ``service-key`` reply
    announced, and every reply must carry the issuer key's signature over its request's id.
    The issuer key is the trust anchor: pass it (``issuer_key``, or :meth:`for_settings`, which
    reads the issuer certificate written at ``issuer hsm init``); without it the client pins
    the key of the certificate in the first ``service-key`` reply (trust on first use).
    """

    def __init__(
        self,
        socket_path: Path,
        signer: Signer,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        *,
        issuer_key: ec.EllipticCurvePublicKey | None = None,
    ) -> None:
        self.socket_path = socket_path
        self.signer = signer
        self.timeout_s = timeout_s
        self._idle: list[socket.socket] = []  # open connections, none in use
        self._lock = threading.Lock()
        self._key_lock = threading.Lock()
        self._issuer_key = issuer_key
        self._recipient: protocol.RecipientKey | None = None
        self._certificate: bytes | None = None

    @classmethod
    def for_settings(
        cls, settings: IssuerHsmSettings, signer: Signer, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> IssuerHsmClient:
        """A client that trusts the issuer key of ``settings.issuer_certificate``."""
        try:
            data = settings.issuer_certificate.read_bytes()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read the issuer certificate {settings.issuer_certificate}: {exc.strerror}"
            ) from None
        return cls(
            settings.socket_path, signer, timeout_s, issuer_key=issuer_key_from_certificate(data)
        )

    def __enter__(self) -> IssuerHsmClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for sock in idle:
            sock.close()

    @staticmethod
    def _still_open(sock: socket.socket) -> bool:
        """Nothing is due on an idle connection: readable means EOF, an error or stray bytes."""
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return not poller.poll(0)

    def _take(self) -> socket.socket:
        """An idle connection the service has not closed meanwhile, else a new one."""
        while True:
            with self._lock:
                sock = self._idle.pop() if self._idle else None
            if sock is None:
                return self._connect()
            if self._still_open(sock):
                return sock
            sock.close()

    def _give_back(self, sock: socket.socket) -> None:
        with self._lock:
            self._idle.append(sock)

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout_s)
        try:
            sock.connect(str(self.socket_path))
        except OSError as exc:
            sock.close()
            raise ServiceUnavailableError(
                f"the issuer HSM service does not answer on {self.socket_path}: {exc.strerror}"
            ) from None
        return sock

    def exchange(self, message: bytes) -> bytes:
        """Send one encoded request, return the raw reply (no checks). Thread-safe: calls from
        several threads run at once, each on its own connection (the service has a worker
        for each), and a connection is reused when its call is done.

        At most once: a request that may have reached the service is never sent again (its
        id would be refused as a replay, and the user would see the wrong reason). If the
        answer is lost, AnswerLostError says so."""
        sock = self._take()
        try:
            protocol.send_frame(sock, message)
        except OSError:
            # sendall failed: the service got no whole frame, so it never ran the request
            sock.close()
            sock = self._connect()
            try:
                protocol.send_frame(sock, message)
            except OSError as exc:
                sock.close()
                raise ServiceUnavailableError(
                    f"cannot send to the issuer HSM service on {self.socket_path}: "
                    f"{exc.strerror or type(exc).__name__}"
                ) from None
        try:
            reply = protocol.recv_frame(sock)
        except (ConnectionError, OSError) as exc:
            sock.close()
            what = (
                f"no answer within {self.timeout_s:g} s"
                if isinstance(exc, TimeoutError)
                else "the service closed the connection before answering"
            )
            raise AnswerLostError(
                f"the issuer HSM service took the request but its answer was lost ({what});"
                " whether it was carried out is unknown: see the service's log"
            ) from None
        self._give_back(sock)
        return reply

    def send_raw(self, message: bytes) -> tuple[int, dict[str, Any]]:
        """Send one already-encoded request; (status, body) of its checked reply
        (BadResponseError if unsigned, badly signed, or for another request). For tests, too."""
        issuer_key = self.issuer_public_key()
        reply = self.exchange(message)
        return protocol.decode_response(reply, protocol.claimed_request_id(message), issuer_key)

    def _handshake(self) -> None:
        """Ask for the service key (body in clear) and check its reply's signature."""
        message = protocol.encode_request(protocol.OP_SERVICE_KEY, {}, self.signer.sign, None)
        reply = self.exchange(message)
        issuer_key = self._issuer_key
        if issuer_key is None:  # trust on first use: the certificate the reply carries
            status, body = protocol.unverified_response(reply)
            certificate = body.get("certificate_der")
            if certificate is None:
                _raise_for(status, body)  # a refusal (unverifiable without an anchor)
            try:
                issuer_key = issuer_key_from_certificate(base64.b64decode(str(certificate)))
            except (HsmError, ValueError):
                raise BadResponseError(
                    protocol.RESPONSE_MALFORMED, "the service-key reply has no issuer certificate"
                ) from None
        status, body = protocol.decode_response(
            reply, protocol.claimed_request_id(message), issuer_key
        )
        _raise_for(status, body)
        self._recipient = protocol.recipient_from_announcement(body)
        self._issuer_key = issuer_key

    def service_key(self) -> protocol.RecipientKey:
        """The service's HPKE key (asked once, again after an ``undecryptable`` refusal)."""
        with self._key_lock:
            if self._recipient is None or self._issuer_key is None:
                self._handshake()
            assert self._recipient is not None
            return self._recipient

    def _forget_service_key(self, stale: protocol.RecipientKey) -> None:
        with self._key_lock:
            if self._recipient is stale:
                self._recipient = None

    def call(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        """An encrypted, signed request; RequestRefused/HsmError if the service says no.

        If the service no longer knows the key the body was encrypted to (it restarted), the
        client asks for the new key and sends the request once more (with a new id)."""
        for attempt in (1, 2):
            recipient = self.service_key()
            message = protocol.encode_request(op, body, self.signer.sign, recipient)
            status, reply = self.send_raw(message)
            if (
                attempt == 1
                and status == protocol.STATUS_REFUSED
                and reply.get("reason") == protocol.REFUSED_UNDECRYPTABLE
            ):
                self._forget_service_key(recipient)
                continue
            _raise_for(status, reply)
            return reply
        raise HsmError("unreachable")  # pragma: no cover - the loop returns or raises

    def ping(self) -> bool:
        return bool(self.call("ping", {}).get("ok"))

    def issuer_public_key(self) -> ec.EllipticCurvePublicKey:
        """The trusted issuer key (given, or pinned at the first service-key reply)."""
        if self._issuer_key is None:
            self.service_key()
        assert self._issuer_key is not None
        return self._issuer_key

    def issuer_certificate(self) -> bytes:
        """The issuer key's self-signed certificate (DER), as in every PIN letter."""
        if self._certificate is None:
            reply = self.call("issuer-public-key", {})
            certificate = base64.b64decode(reply["certificate_der"])
            if not _same_key(issuer_key_from_certificate(certificate), self.issuer_public_key()):
                raise HsmError("the issuer HSM service sent a certificate for another key")
            self._certificate = certificate
        return self._certificate

    def xpub(self, path: str) -> str:
        return str(self.call("xpub", {"path": path})["xpub"])

    def register_mailer(self, mailer_id: str, public_key: rsa.RSAPublicKey | bytes) -> list[str]:
        """Register (or replace) a mailer's RSA public key (object or SPKI DER)."""
        der = (
            public_key
            if isinstance(public_key, bytes)
            else public_key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        reply = self.call(
            "register-mailer",
            {"mailer_id": mailer_id, "public_key_der": base64.b64encode(der).decode()},
        )
        return [str(m) for m in reply["mailers"]]

    def mailers(self) -> list[str]:
        return [str(m) for m in self.call("list-mailers", {})["mailers"]]

    def seal_batch(self, requests: Sequence[SealRequest]) -> list[SealResult]:
        """Seal a batch in one round trip; results in request order (a card the HSM refused
        has a result with ``refusal`` set; the others are sealed)."""
        if not requests:
            return []
        reply = self.call("seal-batch", {"cards": [r.to_wire() for r in requests]})
        raw_results = reply.get("results")
        if not isinstance(raw_results, list):
            raise HsmError("the issuer HSM service sent no results")
        results = [SealResult.from_wire(v) for v in raw_results]
        if [r.order_id for r in results] != [r.order_id for r in requests]:
            raise HsmError("the issuer HSM service answered for other orders")
        return results
