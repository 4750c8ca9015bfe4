"""The request format between the issuer system and the issuer HSM service (docs/hsm.md).

On the socket every message is a frame: 4-byte big-endian length, then the message.

Request (version 2): encrypted to the service's HPKE key, then signed (encrypt-then-sign)::

    header = "SCHQ" | 02 | request id (16 random bytes) | timestamp (8, ms since epoch, BE)
             | op length (1) | op (ASCII) | service key id (8; 8 zero bytes: body in clear)
    request = header | body length (4, BE) | body | signature length (1) | signature

    body = HPKE enc (32) | AES-256-GCM ciphertext of the UTF-8 JSON body (with its 16-byte tag)
           RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM,
           info = header (every byte of it)
         | the UTF-8 JSON body in clear, only for ``service-key`` (key id zero)
    signature = DER ECDSA P-256 over SHA-256 of every byte before the signature length, by the
                issuer system's request key

Response (version 2), signed by the issuer key in the issuer token::

    "SCHR" | 02 | request id (16, echoed) | status (1: 0 ok, 1 refused, 2 error)
    | body length (4, BE) | body (UTF-8 JSON) | signature length (1) | signature
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from sealcard.hsm.errors import BadResponseError, HsmError, RequestRefused

REQUEST_MAGIC = b"SCHQ"
RESPONSE_MAGIC = b"SCHR"
PROTOCOL_VERSION = 2
REQUEST_ID_LENGTH = 16
KEY_ID_LENGTH = 8
CLEAR_KEY_ID = bytes(KEY_ID_LENGTH)  # the body is not encrypted (service-key only)
MAX_FRAME = 64 * 1024 * 1024
MAX_SIGNATURE_LENGTH = 72
STATUS_OK = 0
STATUS_REFUSED = 1
STATUS_ERROR = 2

# The HPKE suite (RFC 9180 identifiers, announced by service-key and checked by the client)
HPKE_KEM_ID = 0x0020  # DHKEM(X25519, HKDF-SHA256)
HPKE_KDF_ID = 0x0001  # HKDF-SHA256
HPKE_AEAD_ID = 0x0002  # AES-256-GCM
HPKE_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
HPKE_ENC_LENGTH = 32  # X25519 public key
HPKE_TAG_LENGTH = 16
SERVICE_PUBLIC_KEY_LENGTH = 32

# The one operation whose body may travel in clear: it asks for the key to encrypt to.
OP_SERVICE_KEY = "service-key"
CLEAR_OPS = frozenset({OP_SERVICE_KEY})

# Named refusal reasons (RequestRefused.reason), in the order the service checks
REFUSED_MALFORMED = "malformed"
REFUSED_VERSION = "unsupported-version"
REFUSED_UNSIGNED = "unsigned"
REFUSED_BAD_SIGNATURE = "bad-signature"
REFUSED_STALE = "stale"
REFUSED_REPLAY = "replay"
REFUSED_UNDECRYPTABLE = "undecryptable"
REFUSED_UNKNOWN_OP = "unknown-op"
# A request that passed every check but could not be carried out (a bug or a token failure):
# answered with STATUS_ERROR and this reason, never by dropping the connection
FAILED_INTERNAL = "internal-error"

# Why one card of a seal-batch was not sealed (the others of the batch are): the reason of a
# per-card {"error": {"reason", "message"}} entry in the results
CARD_MALFORMED = "malformed"
CARD_UNKNOWN_MAILER = "unknown-mailer"
CARD_BAD_DEVICE_KEY = "bad-device-key"

# Named reasons the client rejects a response for (BadResponseError.reason)
RESPONSE_MALFORMED = "malformed-response"
RESPONSE_UNSIGNED = "unsigned-response"
RESPONSE_BAD_SIGNATURE = "bad-response-signature"
RESPONSE_OTHER_REQUEST = "other-request"

_FRAME = struct.Struct(">I")
_TIMESTAMP = struct.Struct(">Q")
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_PREFIX = len(REQUEST_MAGIC) + 1  # magic and version
_RESPONSE_HEADER = len(RESPONSE_MAGIC) + 1 + REQUEST_ID_LENGTH + 1 + _FRAME.size


# ------------------------------------------------------------------------- the HPKE keys


def key_id_of(public_key: bytes) -> bytes:
    """The 8-byte key id of a service public key: SHA-256 of its 32 raw bytes, first 8."""
    return hashlib.sha256(public_key).digest()[:KEY_ID_LENGTH]


@dataclass(frozen=True)
class RecipientKey:
    """The service's HPKE public key as the client knows it (from a verified service-key)."""

    public_key: x25519.X25519PublicKey
    key_id: bytes

    @classmethod
    def from_raw(cls, raw: bytes) -> RecipientKey:
        if len(raw) != SERVICE_PUBLIC_KEY_LENGTH:
            raise ValueError("an X25519 public key is 32 bytes")
        return cls(x25519.X25519PublicKey.from_public_bytes(raw), key_id_of(raw))


class ServiceKey:
    """The service's HPKE key pair: in the service's memory only, made at each start."""

    def __init__(self, private_key: x25519.X25519PrivateKey) -> None:
        self._private = private_key
        self.public_raw = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = key_id_of(self.public_raw)

    def __repr__(self) -> str:
        return f"ServiceKey(key_id={self.key_id.hex()})"

    @classmethod
    def from_random(cls, random_bytes: bytes) -> ServiceKey:
        """From 32 bytes of a good RNG (the service uses the issuer token's RNG)."""
        return cls(x25519.X25519PrivateKey.from_private_bytes(random_bytes))

    @classmethod
    def generate(cls) -> ServiceKey:
        return cls(x25519.X25519PrivateKey.generate())

    def recipient(self) -> RecipientKey:
        return RecipientKey(self._private.public_key(), self.key_id)

    def announcement(self) -> dict[str, Any]:
        """The body of the service-key reply (the reply is signed with the issuer key)."""
        return {
            "kem_id": HPKE_KEM_ID,
            "kdf_id": HPKE_KDF_ID,
            "aead_id": HPKE_AEAD_ID,
            "public_key": self.public_raw.hex(),
            "key_id": self.key_id.hex(),
        }

    def decrypt(self, header: bytes, sealed: bytes) -> bytes:
        """Open an HPKE body with ``header`` as info; RequestRefused(undecryptable) if it fails."""
        try:
            return HPKE_SUITE.decrypt(sealed, self._private, info=header)
        except (InvalidTag, ValueError):
            raise RequestRefused(
                REFUSED_UNDECRYPTABLE, "the request body does not decrypt with the service key"
            ) from None


def recipient_from_announcement(body: dict[str, Any]) -> RecipientKey:
    """Check a service-key reply body (suite, key id) and return the key to encrypt to."""
    suite = (body.get("kem_id"), body.get("kdf_id"), body.get("aead_id"))
    if suite != (HPKE_KEM_ID, HPKE_KDF_ID, HPKE_AEAD_ID):
        raise HsmError(f"the issuer HSM service announces an unsupported HPKE suite {suite}")
    try:
        key = RecipientKey.from_raw(bytes.fromhex(str(body["public_key"])))
        announced_id = bytes.fromhex(str(body["key_id"]))
    except (KeyError, ValueError):
        raise HsmError("the issuer HSM service announced a malformed key") from None
    if announced_id != key.key_id:
        raise HsmError("the issuer HSM service announced a key id that does not match its key")
    return key


# ------------------------------------------------------------------------------ requests


@dataclass(frozen=True)
class WireRequest:
    """A request's layout, parsed but not yet checked (signature, freshness, decryption)."""

    header: bytes  # magic .. key id: the HPKE info
    request_id: bytes
    timestamp_ms: int
    op: str
    key_id: bytes
    payload: bytes  # the body as sent: HPKE enc | ciphertext, or JSON in clear
    signed_message: bytes
    signature: bytes

    @property
    def encrypted(self) -> bool:
        return self.key_id != CLEAR_KEY_ID


@dataclass(frozen=True)
class Request:
    """A request the service accepted: signed, fresh, not replayed, decrypted."""

    request_id: bytes
    timestamp_ms: int
    op: str
    body: dict[str, Any]
    encrypted: bool
    plaintext: bytes = b""  # the decrypted JSON body, when the verifier did not parse it


def request_header(request_id: bytes, timestamp_ms: int, op: str, key_id: bytes) -> bytes:
    """Magic, version, request id, timestamp, op, key id: signed, and the HPKE info."""
    op_bytes = op.encode("ascii")
    if len(request_id) != REQUEST_ID_LENGTH or len(key_id) != KEY_ID_LENGTH:
        raise HsmError("request id or key id of the wrong length")
    if not 0 < len(op_bytes) < 256:
        raise HsmError("operation name of an impossible length")
    return (
        REQUEST_MAGIC
        + bytes([PROTOCOL_VERSION])
        + request_id
        + _TIMESTAMP.pack(timestamp_ms)
        + bytes([len(op_bytes)])
        + op_bytes
        + key_id
    )


def seal_body(header: bytes, body: dict[str, Any], recipient: RecipientKey | None) -> bytes:
    """The body as sent: JSON, HPKE-encrypted to ``recipient`` with the header as info."""
    plain = json.dumps(body, separators=(",", ":")).encode("utf-8")
    if recipient is None:
        return plain
    return HPKE_SUITE.encrypt(plain, recipient.public_key, info=header)


def assemble_request(header: bytes, payload: bytes, sign: Callable[[bytes], bytes]) -> bytes:
    """Header, body length, body, then the signature over all of it."""
    message = header + _FRAME.pack(len(payload)) + payload
    signature = sign(message)
    if not 0 < len(signature) <= MAX_SIGNATURE_LENGTH:
        raise HsmError("request signature has an impossible length")
    return message + bytes([len(signature)]) + signature


def encode_request(
    op: str,
    body: dict[str, Any],
    sign: Callable[[bytes], bytes],
    recipient: RecipientKey | None,
    request_id: bytes | None = None,
    timestamp_ms: int | None = None,
) -> bytes:
    """A request message (without the frame length): encrypted to ``recipient`` (None: the body
    in clear, which the service accepts for ``service-key`` only), then signed."""
    header = request_header(
        request_id if request_id is not None else os.urandom(REQUEST_ID_LENGTH),
        timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
        op,
        recipient.key_id if recipient is not None else CLEAR_KEY_ID,
    )
    return assemble_request(header, seal_body(header, body, recipient), sign)


def decode_request(data: bytes) -> WireRequest:
    """Parse a request's layout (no checks of signature or body); RequestRefused if malformed."""
    fixed = _PREFIX + REQUEST_ID_LENGTH + _TIMESTAMP.size + 1
    if len(data) < fixed or data[: len(REQUEST_MAGIC)] != REQUEST_MAGIC:
        raise RequestRefused(REFUSED_MALFORMED, "not a sealcard HSM request")
    if data[len(REQUEST_MAGIC)] != PROTOCOL_VERSION:
        raise RequestRefused(REFUSED_VERSION, f"request format version {data[4]}")
    offset = _PREFIX
    request_id = data[offset : offset + REQUEST_ID_LENGTH]
    offset += REQUEST_ID_LENGTH
    (timestamp_ms,) = _TIMESTAMP.unpack_from(data, offset)
    offset += _TIMESTAMP.size
    op_length = data[offset]
    offset += 1
    op_bytes = data[offset : offset + op_length]
    offset += op_length
    key_id = data[offset : offset + KEY_ID_LENGTH]
    offset += KEY_ID_LENGTH
    if len(op_bytes) != op_length or len(key_id) != KEY_ID_LENGTH:
        raise RequestRefused(REFUSED_MALFORMED, "truncated request header")
    header_end = offset
    if len(data) < offset + _FRAME.size:
        raise RequestRefused(REFUSED_MALFORMED, "truncated request")
    (body_length,) = _FRAME.unpack_from(data, offset)
    offset += _FRAME.size
    payload = data[offset : offset + body_length]
    offset += body_length
    if len(payload) != body_length:
        raise RequestRefused(REFUSED_MALFORMED, "truncated request body")
    if offset == len(data):
        raise RequestRefused(REFUSED_UNSIGNED, "the request carries no signature")
    signature_length = data[offset]
    signature = data[offset + 1 :]
    if signature_length == 0 or len(signature) != signature_length:
        raise RequestRefused(REFUSED_MALFORMED, "bad signature length or bytes after it")
    try:
        op = op_bytes.decode("ascii")
    except UnicodeDecodeError:
        raise RequestRefused(REFUSED_MALFORMED, "the op is not ASCII") from None
    return WireRequest(
        header=data[:header_end],
        request_id=request_id,
        timestamp_ms=timestamp_ms,
        op=op,
        key_id=key_id,
        payload=payload,
        signed_message=data[:offset],
        signature=signature,
    )


def claimed_request_id(data: bytes) -> bytes:
    """The request id a message claims (zero-padded if short), to echo in a refusal."""
    return data[_PREFIX : _PREFIX + REQUEST_ID_LENGTH].ljust(REQUEST_ID_LENGTH, b"\x00")


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise RequestRefused(REFUSED_MALFORMED, f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise RequestRefused(REFUSED_MALFORMED, f"{what} must be a JSON object")
    return value


class RequestVerifier:
    """The service's checks, in this order: layout, version, signature present, signature,
    freshness, replay, decryption (or clear body for ``service-key`` only), JSON."""

    def __init__(
        self,
        public_key: ec.EllipticCurvePublicKey,
        max_age_s: float,
        service_key: ServiceKey | None = None,
    ) -> None:
        self.public_key = public_key
        self.max_age_ms = int(max_age_s * 1000)
        self.service_key = service_key
        self._seen: dict[bytes, int] = {}
        self._lock = threading.Lock()

    def verify(self, data: bytes, now_ms: int | None = None, *, parse_body: bool = True) -> Request:
        """Every check, in order; RequestRefused with the first that fails. With
        ``parse_body=False`` an encrypted body is decrypted but not parsed (``plaintext``):
        the service's worker parses it, once."""
        wire = decode_request(data)
        try:
            self.public_key.verify(wire.signature, wire.signed_message, _ECDSA_SHA256)
        except InvalidSignature:
            raise RequestRefused(
                REFUSED_BAD_SIGNATURE, "the request is not signed by the issuer system's key"
            ) from None
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        if abs(now - wire.timestamp_ms) > self.max_age_ms:
            raise RequestRefused(REFUSED_STALE, "the request timestamp is outside the window")
        with self._lock:
            for seen_id, expiry in list(self._seen.items()):
                if expiry < now:
                    del self._seen[seen_id]
            if wire.request_id in self._seen:
                raise RequestRefused(REFUSED_REPLAY, "this request id was already used")
            self._seen[wire.request_id] = wire.timestamp_ms + self.max_age_ms
        if not wire.encrypted:
            if wire.op not in CLEAR_OPS:
                raise RequestRefused(
                    REFUSED_UNDECRYPTABLE, f"{wire.op!r} needs a body encrypted to the service key"
                )
            body = _json_object(wire.payload, "the request body")
            return Request(wire.request_id, wire.timestamp_ms, wire.op, body, False, wire.payload)
        if self.service_key is None or wire.key_id != self.service_key.key_id:
            raise RequestRefused(
                REFUSED_UNDECRYPTABLE,
                "the request is encrypted to another service key (ask service-key again)",
            )
        plaintext = self.service_key.decrypt(wire.header, wire.payload)
        body = _json_object(plaintext, "the body") if parse_body else {}
        return Request(wire.request_id, wire.timestamp_ms, wire.op, body, True, plaintext)


# ----------------------------------------------------------------------------- responses


def encode_response(
    request_id: bytes, status: int, body: dict[str, Any], sign: Callable[[bytes], bytes]
) -> bytes:
    """A response signed with ``sign`` (the issuer key in the token) over every byte."""
    payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
    message = (
        RESPONSE_MAGIC
        + bytes([PROTOCOL_VERSION])
        + request_id
        + bytes([status])
        + _FRAME.pack(len(payload))
        + payload
    )
    signature = sign(message)
    if not 0 < len(signature) <= MAX_SIGNATURE_LENGTH:
        raise HsmError("response signature has an impossible length")
    return message + bytes([len(signature)]) + signature


def decode_response(
    data: bytes, request_id: bytes, issuer_key: ec.EllipticCurvePublicKey
) -> tuple[int, dict[str, Any]]:
    """Check a response (layout, signature by the issuer key, request id); BadResponseError."""
    if (
        len(data) < _RESPONSE_HEADER
        or data[: len(RESPONSE_MAGIC)] != RESPONSE_MAGIC
        or data[len(RESPONSE_MAGIC)] != PROTOCOL_VERSION
    ):
        raise BadResponseError(RESPONSE_MALFORMED, "not a version 2 response")
    offset = _PREFIX + REQUEST_ID_LENGTH
    status = data[offset]
    (length,) = _FRAME.unpack_from(data, offset + 1)
    end = _RESPONSE_HEADER + length
    if len(data) < end:
        raise BadResponseError(RESPONSE_MALFORMED, "truncated response")
    if len(data) == end:
        raise BadResponseError(RESPONSE_UNSIGNED, "the response carries no signature")
    signature = data[end + 1 :]
    if data[end] == 0 or len(signature) != data[end]:
        raise BadResponseError(RESPONSE_MALFORMED, "bad signature length or bytes after it")
    try:
        issuer_key.verify(signature, data[:end], _ECDSA_SHA256)
    except InvalidSignature:
        raise BadResponseError(
            RESPONSE_BAD_SIGNATURE, "the response is not signed by the issuer key"
        ) from None
    if data[_PREFIX : _PREFIX + REQUEST_ID_LENGTH] != request_id:
        raise BadResponseError(RESPONSE_OTHER_REQUEST, "the response answers another request")
    try:
        body = json.loads(data[_RESPONSE_HEADER:end].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadResponseError(RESPONSE_MALFORMED, "the response body is not JSON") from None
    if not isinstance(body, dict):
        raise BadResponseError(RESPONSE_MALFORMED, "the response body is not a JSON object")
    return status, body


def unverified_response(data: bytes) -> tuple[int, dict[str, Any]]:
    """Status and body of a response WITHOUT checking its signature: only to find the issuer
    certificate when the client has no trust anchor yet (trust on first use)."""
    if len(data) < _RESPONSE_HEADER or data[: len(RESPONSE_MAGIC)] != RESPONSE_MAGIC:
        raise BadResponseError(RESPONSE_MALFORMED, "not a sealcard HSM response")
    (length,) = _FRAME.unpack_from(data, _RESPONSE_HEADER - _FRAME.size)
    try:
        body = json.loads(data[_RESPONSE_HEADER : _RESPONSE_HEADER + length].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadResponseError(RESPONSE_MALFORMED, "the response body is not JSON") from None
    if not isinstance(body, dict):
        raise BadResponseError(RESPONSE_MALFORMED, "the response body is not a JSON object")
    return data[_RESPONSE_HEADER - _FRAME.size - 1], body


# -------------------------------------------------------------------------------- frames


def send_frame(sock: socket.socket, message: bytes) -> None:
    sock.sendall(_FRAME.pack(len(message)) + message)


def _recv_exact(sock: socket.socket, count: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < count:
        chunk = sock.recv(min(count - len(chunks), 1 << 20))
        if not chunk:
            raise ConnectionError("connection closed")
        chunks.extend(chunk)
    return bytes(chunks)


class FrameTooLargeError(ConnectionError):
    """A frame announced more than MAX_FRAME bytes: the stream cannot be trusted after it."""


def recv_frame(sock: socket.socket) -> bytes:
    (length,) = _FRAME.unpack(_recv_exact(sock, _FRAME.size))
    if length > MAX_FRAME:
        raise FrameTooLargeError(f"a frame of {length} bytes (at most {MAX_FRAME})")
    return _recv_exact(sock, length)
