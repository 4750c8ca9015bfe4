"""The issuer system's side of the issuer HSM service: signed requests over the Unix socket."""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sealcard.hsm import protocol
from sealcard.hsm.errors import HsmError, RequestRefused, ServiceUnavailableError

DEFAULT_TIMEOUT_S = 120.0


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
class SealResult:
    """What the HSM returns for one card: the blob, the user's public key, the P2 letter."""

    order_id: str
    sealed_blob: bytes
    user_public_key: bytes  # 33 bytes, compressed secp256k1
    pin_letter: bytes | None

    @classmethod
    def from_wire(cls, value: dict[str, Any]) -> SealResult:
        letter = value.get("pin_letter")
        return cls(
            str(value["order_id"]),
            base64.b64decode(value["sealed_blob"]),
            bytes.fromhex(value["user_public_key"]),
            None if letter is None else base64.b64decode(letter),
        )


class IssuerHsmClient:
    """One connection to the service (reconnects once if it dropped); thread-safe."""

    def __init__(
        self, socket_path: Path, signer: Signer, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.socket_path = socket_path
        self.signer = signer
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._issuer_key: ec.EllipticCurvePublicKey | None = None
        self._certificate: bytes | None = None

    def __enter__(self) -> IssuerHsmClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

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

    def send_raw(self, message: bytes) -> tuple[int, dict[str, Any]]:
        """Send one already-encoded request; (status, body). For tests of refusals, too."""
        request_id = message[5 : 5 + protocol.REQUEST_ID_LENGTH]
        with self._lock:
            for attempt in (1, 2):
                if self._sock is None:
                    self._sock = self._connect()
                try:
                    protocol.send_frame(self._sock, message)
                    reply = protocol.recv_frame(self._sock)
                    break
                except (ConnectionError, OSError):
                    self._sock.close()
                    self._sock = None
                    if attempt == 2:
                        raise ServiceUnavailableError(
                            "the issuer HSM service closed the connection"
                        ) from None
        return protocol.decode_response(reply, request_id)

    def call(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        """A signed request; RequestRefused/HsmError if the service says no."""
        status, reply = self.send_raw(protocol.encode_request(op, body, self.signer.sign))
        if status == protocol.STATUS_REFUSED:
            raise RequestRefused(str(reply.get("reason")), str(reply.get("message")))
        if status != protocol.STATUS_OK:
            raise HsmError(f"the issuer HSM service failed: {reply.get('message')}")
        return reply

    def ping(self) -> bool:
        return bool(self.call("ping", {}).get("ok"))

    def _fetch_issuer(self) -> None:
        reply = self.call("issuer-public-key", {})
        key = serialization.load_der_public_key(base64.b64decode(reply["public_key_der"]))
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise HsmError("the issuer key is not an EC key")
        self._issuer_key = key
        self._certificate = base64.b64decode(reply["certificate_der"])

    def issuer_public_key(self) -> ec.EllipticCurvePublicKey:
        if self._issuer_key is None:
            self._fetch_issuer()
        assert self._issuer_key is not None
        return self._issuer_key

    def issuer_certificate(self) -> bytes:
        """The issuer key's self-signed certificate (DER), as in every PIN letter."""
        if self._certificate is None:
            self._fetch_issuer()
        assert self._certificate is not None
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
        """Seal a batch in one round trip; results in request order."""
        if not requests:
            return []
        reply = self.call("seal-batch", {"cards": [r.to_wire() for r in requests]})
        results = [SealResult.from_wire(v) for v in reply["results"]]
        if [r.order_id for r in results] != [r.order_id for r in requests]:
            raise HsmError("the issuer HSM service answered for other orders")
        return results
