"""The signed request format between the issuer system and the issuer HSM service (docs/hsm.md).

On the socket every message is a frame: 4-byte big-endian length, then the message.

Request (version 1)::

    "SCHQ" | 01 | request id (16 random bytes) | timestamp (8, ms since epoch, big-endian)
    | op length (1) | op (ASCII) | body length (4) | body (UTF-8 JSON)
    | signature length (1) | signature (DER ECDSA P-256 over SHA-256 of all bytes before it)

Response (version 1)::

    "SCHR" | 01 | request id (16) | status (1: 0 ok, 1 refused, 2 error)
    | body length (4) | body (UTF-8 JSON)
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from sealcard.hsm.errors import HsmError, RequestRefused

REQUEST_MAGIC = b"SCHQ"
RESPONSE_MAGIC = b"SCHR"
PROTOCOL_VERSION = 1
REQUEST_ID_LENGTH = 16
MAX_FRAME = 64 * 1024 * 1024
MAX_SIGNATURE_LENGTH = 72
STATUS_OK = 0
STATUS_REFUSED = 1
STATUS_ERROR = 2

# Named refusal reasons (RequestRefused.reason)
REFUSED_MALFORMED = "malformed"
REFUSED_VERSION = "unsupported-version"
REFUSED_UNSIGNED = "unsigned"
REFUSED_BAD_SIGNATURE = "bad-signature"
REFUSED_STALE = "stale"
REFUSED_REPLAY = "replay"
REFUSED_UNKNOWN_OP = "unknown-op"

_FRAME = struct.Struct(">I")
_TIMESTAMP = struct.Struct(">Q")


@dataclass(frozen=True)
class Request:
    request_id: bytes
    timestamp_ms: int
    op: str
    body: dict[str, Any]
    signed_message: bytes
    signature: bytes


def encode_request(
    op: str,
    body: dict[str, Any],
    sign: Callable[[bytes], bytes],
    request_id: bytes | None = None,
    timestamp_ms: int | None = None,
) -> bytes:
    """A signed request message (without the frame length)."""
    op_bytes = op.encode("ascii")
    payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
    message = (
        REQUEST_MAGIC
        + bytes([PROTOCOL_VERSION])
        + (request_id if request_id is not None else os.urandom(REQUEST_ID_LENGTH))
        + _TIMESTAMP.pack(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
        + bytes([len(op_bytes)])
        + op_bytes
        + _FRAME.pack(len(payload))
        + payload
    )
    signature = sign(message)
    if not 0 < len(signature) <= MAX_SIGNATURE_LENGTH:
        raise HsmError("request signature has an impossible length")
    return message + bytes([len(signature)]) + signature


def decode_request(data: bytes) -> Request:
    """Parse a request's layout (no signature check); RequestRefused if malformed."""
    header = len(REQUEST_MAGIC) + 1 + REQUEST_ID_LENGTH + _TIMESTAMP.size + 1
    if len(data) < header or data[:4] != REQUEST_MAGIC:
        raise RequestRefused(REFUSED_MALFORMED, "not a sealcard HSM request")
    if data[4] != PROTOCOL_VERSION:
        raise RequestRefused(REFUSED_VERSION, f"request format version {data[4]}")
    offset = 5
    request_id = data[offset : offset + REQUEST_ID_LENGTH]
    offset += REQUEST_ID_LENGTH
    (timestamp_ms,) = _TIMESTAMP.unpack_from(data, offset)
    offset += _TIMESTAMP.size
    op_length = data[offset]
    offset += 1
    op_bytes = data[offset : offset + op_length]
    offset += op_length
    if len(op_bytes) != op_length or len(data) < offset + _FRAME.size:
        raise RequestRefused(REFUSED_MALFORMED, "truncated request")
    (body_length,) = _FRAME.unpack_from(data, offset)
    offset += _FRAME.size
    body_bytes = data[offset : offset + body_length]
    offset += body_length
    if len(body_bytes) != body_length:
        raise RequestRefused(REFUSED_MALFORMED, "truncated request body")
    if offset == len(data):
        raise RequestRefused(REFUSED_UNSIGNED, "the request carries no signature")
    signature_length = data[offset]
    signature = data[offset + 1 :]
    if signature_length == 0 or len(signature) != signature_length:
        raise RequestRefused(REFUSED_MALFORMED, "bad signature length or bytes after it")
    try:
        op = op_bytes.decode("ascii")
        body = json.loads(body_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise RequestRefused(REFUSED_MALFORMED, "request op or body is not valid") from None
    if not isinstance(body, dict):
        raise RequestRefused(REFUSED_MALFORMED, "request body must be a JSON object")
    return Request(request_id, timestamp_ms, op, body, data[:offset], signature)


class RequestVerifier:
    """Signature, freshness and replay checks, in that order."""

    def __init__(self, public_key: ec.EllipticCurvePublicKey, max_age_s: float) -> None:
        self.public_key = public_key
        self.max_age_ms = int(max_age_s * 1000)
        self._seen: dict[bytes, int] = {}
        self._lock = threading.Lock()

    def verify(self, data: bytes, now_ms: int | None = None) -> Request:
        request = decode_request(data)
        try:
            self.public_key.verify(
                request.signature, request.signed_message, ec.ECDSA(hashes.SHA256())
            )
        except InvalidSignature:
            raise RequestRefused(
                REFUSED_BAD_SIGNATURE, "the request is not signed by the issuer system's key"
            ) from None
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        if abs(now - request.timestamp_ms) > self.max_age_ms:
            raise RequestRefused(REFUSED_STALE, "the request timestamp is outside the window")
        with self._lock:
            for seen_id, expiry in list(self._seen.items()):
                if expiry < now:
                    del self._seen[seen_id]
            if request.request_id in self._seen:
                raise RequestRefused(REFUSED_REPLAY, "this request id was already used")
            self._seen[request.request_id] = request.timestamp_ms + self.max_age_ms
        return request


def encode_response(request_id: bytes, status: int, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
    return (
        RESPONSE_MAGIC
        + bytes([PROTOCOL_VERSION])
        + request_id
        + bytes([status])
        + _FRAME.pack(len(payload))
        + payload
    )


def decode_response(data: bytes, request_id: bytes) -> tuple[int, dict[str, Any]]:
    header = len(RESPONSE_MAGIC) + 1 + REQUEST_ID_LENGTH + 1 + _FRAME.size
    if len(data) < header or data[:4] != RESPONSE_MAGIC or data[4] != PROTOCOL_VERSION:
        raise HsmError("malformed response from the issuer HSM service")
    if data[5 : 5 + REQUEST_ID_LENGTH] != request_id:
        raise HsmError("the issuer HSM service answered another request")
    offset = 5 + REQUEST_ID_LENGTH
    status = data[offset]
    (length,) = _FRAME.unpack_from(data, offset + 1)
    payload = data[header:]
    if len(payload) != length:
        raise HsmError("truncated response from the issuer HSM service")
    body = json.loads(payload.decode("utf-8"))
    if not isinstance(body, dict):
        raise HsmError("malformed response body")
    return status, body


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


def recv_frame(sock: socket.socket) -> bytes:
    (length,) = _FRAME.unpack(_recv_exact(sock, _FRAME.size))
    if length > MAX_FRAME:
        raise ConnectionError("frame too large")
    return _recv_exact(sock, length)
