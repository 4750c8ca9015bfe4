"""Protocol v2 without a token: HPKE request bodies bound to their header, encrypt-then-sign,
signed responses bound to their request id (software keys stand in for the tokens)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from sealcard.hsm import protocol
from sealcard.hsm.errors import BadResponseError, HsmError, RequestRefused

pytestmark = pytest.mark.hsm

NOW_MS = 1_800_000_000_000
USER_NAME = "Adelheid Quellenberg-Nørgaard"
USER_ADDRESS = "17 Rue des Tilleuls, 75011 Paris"
DERIVATION_PATH = "m/44'/0'/0'/0/918273"
DEVICE_KEY_DER = os.urandom(294)  # stands in for an RSA SubjectPublicKeyInfo
DEVICE_AUTH_POINT = (b"\x04" + os.urandom(64)).hex()
SEAL_BODY: dict[str, Any] = {
    "cards": [
        {
            "order_id": "order-1",
            "card_serial": "0102030405060708",
            "device_public_key_der": base64.b64encode(DEVICE_KEY_DER).decode(),
            "device_auth_public_key": DEVICE_AUTH_POINT,
            "derivation_path": DERIVATION_PATH,
            "user_name": USER_NAME,
            "user_address": USER_ADDRESS,
            "pin_source": "none",
            "mailer_id": None,
        }
    ]
}


@pytest.fixture(scope="module")
def request_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def issuer_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def service_key() -> protocol.ServiceKey:
    return protocol.ServiceKey.generate()


def _signer(key: ec.EllipticCurvePrivateKey) -> Callable[[bytes], bytes]:
    return lambda data: key.sign(data, ec.ECDSA(hashes.SHA256()))


def _verifier(
    request_key: ec.EllipticCurvePrivateKey, service_key: protocol.ServiceKey
) -> protocol.RequestVerifier:
    return protocol.RequestVerifier(request_key.public_key(), 60, service_key)


def _refusal(verifier: protocol.RequestVerifier, message: bytes) -> str:
    with pytest.raises(RequestRefused) as info:
        verifier.verify(message, now_ms=NOW_MS)
    return info.value.reason


def _request(
    request_key: ec.EllipticCurvePrivateKey,
    recipient: protocol.RecipientKey | None,
    op: str = "seal-batch",
    body: dict[str, Any] = SEAL_BODY,
) -> bytes:
    return protocol.encode_request(op, body, _signer(request_key), recipient, timestamp_ms=NOW_MS)


def test_encrypted_round_trip(
    request_key: ec.EllipticCurvePrivateKey, service_key: protocol.ServiceKey
) -> None:
    message = _request(request_key, service_key.recipient())
    request = _verifier(request_key, service_key).verify(message, now_ms=NOW_MS)
    assert (request.op, request.body, request.encrypted) == ("seal-batch", SEAL_BODY, True)


def test_wire_request_carries_no_user_data_in_clear(
    request_key: ec.EllipticCurvePrivateKey, service_key: protocol.ServiceKey
) -> None:
    message = _request(request_key, service_key.recipient())
    clear = _request(request_key, None)  # the same request with its body in clear
    secrets = [
        json.dumps(USER_NAME)[1:-1].encode(),  # as JSON carries it (non-ASCII escaped)
        b"Quellenberg",
        USER_ADDRESS.encode(),
        b"Tilleuls",
        DERIVATION_PATH.encode(),
        base64.b64encode(DEVICE_KEY_DER),
        DEVICE_AUTH_POINT.encode(),
    ]
    for secret in secrets:
        assert secret in clear  # the grep finds them when the body travels in clear
        assert secret not in message
    assert USER_NAME.encode() not in message


def test_same_request_encrypts_differently(
    request_key: ec.EllipticCurvePrivateKey, service_key: protocol.ServiceKey
) -> None:
    request_id = os.urandom(protocol.REQUEST_ID_LENGTH)
    first, second = (
        protocol.encode_request(
            "xpub",
            {"path": "m/1"},
            _signer(request_key),
            service_key.recipient(),
            request_id=request_id,
            timestamp_ms=NOW_MS,
        )
        for _ in range(2)
    )
    assert protocol.decode_request(first).header == protocol.decode_request(second).header
    assert protocol.decode_request(first).payload != protocol.decode_request(second).payload


def test_encrypted_to_another_key_refused(
    request_key: ec.EllipticCurvePrivateKey, service_key: protocol.ServiceKey
) -> None:
    other = protocol.ServiceKey.generate()
    message = _request(request_key, other.recipient())
    assert _refusal(_verifier(request_key, service_key), message) == (
        protocol.REFUSED_UNDECRYPTABLE
    )


def test_encrypted_to_another_key_under_the_service_key_id_refused(
    request_key: ec.EllipticCurvePrivateKey, service_key: protocol.ServiceKey
) -> None:
    """The key id says 'the service key' but the body is sealed to another key."""
    header = protocol.request_header(os.urandom(16), NOW_MS, "xpub", service_key.key_id)
    other = protocol.ServiceKey.generate().recipient()
    payload = protocol.seal_body(header, {"path": "m/1"}, other)
    message = protocol.assemble_request(header, payload, _signer(request_key))
    assert _refusal(_verifier(request_key, service_key), message) == (
        protocol.REFUSED_UNDECRYPTABLE
    )


def test_tampered_ciphertext_refused(
    request_key: ec.EllipticCurvePrivateKey, service_key: protocol.ServiceKey
) -> None:
    wire = protocol.decode_request(_request(request_key, service_key.recipient()))
    for at in (0, protocol.HPKE_ENC_LENGTH + 3, len(wire.payload) - 1):  # enc, body, tag
        tampered = bytearray(wire.payload)
        tampered[at] ^= 0x01
        # as sent: the signature no longer matches
        verifier = _verifier(request_key, service_key)
        as_sent = bytearray(_request(request_key, service_key.recipient()))
        as_sent[len(wire.header) + 4 + at] ^= 0x01
        assert _refusal(verifier, bytes(as_sent)) == protocol.REFUSED_BAD_SIGNATURE
        # even re-signed by the request key: the AEAD refuses it
        resigned = protocol.assemble_request(wire.header, bytes(tampered), _signer(request_key))
        assert _refusal(verifier, resigned) == protocol.REFUSED_UNDECRYPTABLE


@pytest.mark.parametrize(
    "field",
    ["request_id", "timestamp", "op", "key_id_other_key"],
)
def test_ciphertext_bound_to_its_header(
    request_key: ec.EllipticCurvePrivateKey, service_key: protocol.ServiceKey, field: str
) -> None:
    """A body moved under another header, even signed anew, does not decrypt (header = info)."""
    request_id = os.urandom(16)
    header = protocol.request_header(request_id, NOW_MS, "xpub", service_key.key_id)
    payload = protocol.seal_body(header, {"path": "m/1"}, service_key.recipient())
    changed = {
        "request_id": (os.urandom(16), NOW_MS, "xpub"),
        "timestamp": (request_id, NOW_MS + 1, "xpub"),
        "op": (request_id, NOW_MS, "list-mailers"),
        "key_id_other_key": (request_id, NOW_MS, "xpub"),
    }[field]
    key_id = service_key.key_id
    if field == "key_id_other_key":
        key_id = protocol.ServiceKey.generate().key_id
    moved = protocol.request_header(*changed, key_id)
    message = protocol.assemble_request(moved, payload, _signer(request_key))
    assert _refusal(_verifier(request_key, service_key), message) == (
        protocol.REFUSED_UNDECRYPTABLE
    )
    # and unchanged it is accepted: the refusal above is the header's doing
    genuine = protocol.assemble_request(header, payload, _signer(request_key))
    assert _verifier(request_key, service_key).verify(genuine, now_ms=NOW_MS).op == "xpub"


@pytest.mark.parametrize("offset", [5, 21, 30, 34, 41])
def test_tampered_header_refused(
    request_key: ec.EllipticCurvePrivateKey, service_key: protocol.ServiceKey, offset: int
) -> None:
    """Request id, timestamp, op, key id: a flipped header byte breaks the signature."""
    message = bytearray(_request(request_key, service_key.recipient(), "xpub", {"path": "m"}))
    message[offset] ^= 0x01
    assert _refusal(_verifier(request_key, service_key), bytes(message)) == (
        protocol.REFUSED_BAD_SIGNATURE
    )


def test_clear_body_only_for_service_key(
    request_key: ec.EllipticCurvePrivateKey, service_key: protocol.ServiceKey
) -> None:
    verifier = _verifier(request_key, service_key)
    clear = _request(request_key, None)
    assert _refusal(verifier, clear) == protocol.REFUSED_UNDECRYPTABLE
    hello = _request(request_key, None, protocol.OP_SERVICE_KEY, {})
    request = verifier.verify(hello, now_ms=NOW_MS)
    assert (request.op, request.encrypted) == (protocol.OP_SERVICE_KEY, False)


def test_unsigned_and_wrongly_signed_refused_before_decryption(
    request_key: ec.EllipticCurvePrivateKey, service_key: protocol.ServiceKey
) -> None:
    verifier = _verifier(request_key, service_key)
    wire = protocol.decode_request(_request(request_key, service_key.recipient()))
    assert _refusal(verifier, wire.signed_message) == protocol.REFUSED_UNSIGNED
    intruder = ec.generate_private_key(ec.SECP256R1())
    forged = _request(intruder, service_key.recipient())
    assert _refusal(verifier, forged) == protocol.REFUSED_BAD_SIGNATURE


def test_version_1_request_refused(
    request_key: ec.EllipticCurvePrivateKey, service_key: protocol.ServiceKey
) -> None:
    message = bytearray(_request(request_key, service_key.recipient()))
    message[len(protocol.REQUEST_MAGIC)] = 1
    assert _refusal(_verifier(request_key, service_key), bytes(message)) == (
        protocol.REFUSED_VERSION
    )


def test_announcement_checked(service_key: protocol.ServiceKey) -> None:
    recipient = protocol.recipient_from_announcement(service_key.announcement())
    assert recipient.key_id == service_key.key_id
    wrong_id = {**service_key.announcement(), "key_id": "00" * protocol.KEY_ID_LENGTH}
    with pytest.raises(HsmError):
        protocol.recipient_from_announcement(wrong_id)
    wrong_suite = {**service_key.announcement(), "aead_id": 1}  # AES-128-GCM
    with pytest.raises(HsmError):
        protocol.recipient_from_announcement(wrong_suite)


# ----------------------------------------------------------------------------- responses

REQUEST_ID = bytes(range(16))


def _rejection(data: bytes, issuer: ec.EllipticCurvePrivateKey, request_id: bytes) -> str:
    with pytest.raises(BadResponseError) as info:
        protocol.decode_response(data, request_id, issuer.public_key())
    return info.value.reason


def test_response_round_trip(issuer_key: ec.EllipticCurvePrivateKey) -> None:
    data = protocol.encode_response(REQUEST_ID, protocol.STATUS_OK, {"a": 1}, _signer(issuer_key))
    assert protocol.decode_response(data, REQUEST_ID, issuer_key.public_key()) == (
        protocol.STATUS_OK,
        {"a": 1},
    )


def test_response_signed_by_another_key_refused(issuer_key: ec.EllipticCurvePrivateKey) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    data = protocol.encode_response(REQUEST_ID, protocol.STATUS_OK, {}, _signer(other))
    assert _rejection(data, issuer_key, REQUEST_ID) == protocol.RESPONSE_BAD_SIGNATURE


@pytest.mark.parametrize("offset", [5, 21, 22, 27])  # request id, status, length, body
def test_tampered_response_refused(issuer_key: ec.EllipticCurvePrivateKey, offset: int) -> None:
    data = bytearray(
        protocol.encode_response(REQUEST_ID, protocol.STATUS_OK, {"ok": 1}, _signer(issuer_key))
    )
    data[offset] ^= 0x01
    assert _rejection(bytes(data), issuer_key, REQUEST_ID) in (
        protocol.RESPONSE_BAD_SIGNATURE,
        protocol.RESPONSE_MALFORMED,
    )


def test_response_for_another_request_refused(issuer_key: ec.EllipticCurvePrivateKey) -> None:
    data = protocol.encode_response(REQUEST_ID, protocol.STATUS_OK, {}, _signer(issuer_key))
    assert _rejection(data, issuer_key, os.urandom(16)) == protocol.RESPONSE_OTHER_REQUEST


def test_unsigned_response_refused(issuer_key: ec.EllipticCurvePrivateKey) -> None:
    signatures: list[bytes] = []

    def sign(data: bytes) -> bytes:
        signatures.append(_signer(issuer_key)(data))
        return signatures[-1]

    data = protocol.encode_response(REQUEST_ID, protocol.STATUS_OK, {}, sign)
    unsigned = data[: -(len(signatures[0]) + 1)]  # without signature length and signature
    assert _rejection(unsigned, issuer_key, REQUEST_ID) == protocol.RESPONSE_UNSIGNED
