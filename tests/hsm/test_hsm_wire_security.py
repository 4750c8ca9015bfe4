"""Protocol v2 against the real issuer HSM service (SoftHSM2): what crosses the socket is
encrypted, every reply is signed by the issuer key in the token, and a client refuses replies
that are tampered, unsigned, signed by another key or meant for another request."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hsm_helpers import FrameProxy, ServiceProcess

from sealcard.crypto import sealed_blob
from sealcard.hsm import protocol
from sealcard.hsm.config import IssuerHsmSettings
from sealcard.hsm.errors import BadResponseError
from sealcard.hsm.issuer_client import IssuerHsmClient, SealRequest, issuer_key_from_certificate
from sealcard.hsm.system_hsm import DeviceAuthKeys, RequestSigner

pytestmark = pytest.mark.hsm

BASE = "m/44'/0'/0'/0"
USER_NAME = "Wilhelmina Zwiebelkuchen"
USER_ADDRESS = "4 Kastanienallee, 10435 Berlin"
INDEX = 777_001
POINT_FORM = (serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


@pytest.fixture(scope="module")
def anchor(hsm_home: IssuerHsmSettings) -> ec.EllipticCurvePublicKey:
    """The issuer key as `issuer hsm init` published it (the certificate file)."""
    return issuer_key_from_certificate(hsm_home.issuer_certificate.read_bytes())


@pytest.fixture
def proxy(service: ServiceProcess, hsm_home: IssuerHsmSettings) -> Iterator[FrameProxy]:
    p = FrameProxy(hsm_home.socket_path)
    yield p
    p.close()


def _via(
    proxy: FrameProxy, signer: RequestSigner, anchor: ec.EllipticCurvePublicKey
) -> IssuerHsmClient:
    return IssuerHsmClient(proxy.path, signer, issuer_key=anchor)


def _seal_request(auth_keys: DeviceAuthKeys) -> tuple[SealRequest, rsa.RSAPrivateKey]:
    device = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    request = SealRequest(
        order_id="order-wire",
        card_serial=bytes.fromhex("5EA1C0FFEE000001"),
        device_public_key_der=device.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        device_auth_public_key=auth_keys.generate()[0],
        derivation_path=f"{BASE}/{INDEX}",
        user_name=USER_NAME,
        user_address=USER_ADDRESS,
        pin_source="none",
    )
    return request, device


def test_for_settings_trusts_the_published_certificate(
    service: ServiceProcess,
    hsm_home: IssuerHsmSettings,
    signer: RequestSigner,
    client: IssuerHsmClient,
    anchor: ec.EllipticCurvePublicKey,
) -> None:
    with IssuerHsmClient.for_settings(hsm_home, signer) as anchored:
        assert anchored.ping()
        assert anchored.issuer_public_key().public_bytes(*POINT_FORM) == anchor.public_bytes(
            *POINT_FORM
        )
    # the trust-on-first-use client pinned the same key
    assert client.issuer_public_key().public_bytes(*POINT_FORM) == anchor.public_bytes(*POINT_FORM)


def test_captured_seal_request_hides_user_data(
    proxy: FrameProxy,
    signer: RequestSigner,
    anchor: ec.EllipticCurvePublicKey,
    auth_keys: DeviceAuthKeys,
) -> None:
    request, device = _seal_request(auth_keys)
    with _via(proxy, signer, anchor) as c:
        (result,) = c.seal_batch([request])
    payload = sealed_blob.open_blob(result.sealed_blob, request.card_serial, device, anchor)
    assert payload.device_auth_public_key == request.device_auth_public_key
    wire_requests = b"".join(proxy.requests)
    in_clear = json.dumps(request.to_wire()).encode()  # what v1 put on the socket
    secrets = [
        USER_NAME.encode(),
        USER_ADDRESS.encode(),
        request.derivation_path.encode(),
        str(INDEX).encode(),
        base64.b64encode(request.device_public_key_der),
        request.device_auth_public_key.hex().encode(),
    ]
    for secret in secrets:
        assert secret in in_clear
        assert secret not in wire_requests
    wire_responses = b"".join(proxy.responses)
    assert USER_NAME.encode() not in wire_responses
    assert USER_ADDRESS.encode() not in wire_responses


def test_tampered_response_refused(
    proxy: FrameProxy, signer: RequestSigner, anchor: ec.EllipticCurvePublicKey
) -> None:
    with _via(proxy, signer, anchor) as c:
        c.service_key()  # the handshake passes untouched

        def flip(response: bytes) -> bytes:
            tampered = bytearray(response)
            tampered[tampered.index(b'"xpub"') + 10] ^= 0x01  # a character of the xpub
            return bytes(tampered)

        proxy.on_response = flip
        with pytest.raises(BadResponseError) as info:
            c.xpub(BASE)
    assert info.value.reason == protocol.RESPONSE_BAD_SIGNATURE


def test_unsigned_response_refused(
    proxy: FrameProxy, signer: RequestSigner, anchor: ec.EllipticCurvePublicKey
) -> None:
    with _via(proxy, signer, anchor) as c:
        c.service_key()
        proxy.on_response = _strip_signature
        with pytest.raises(BadResponseError) as info:
            c.ping()
    assert info.value.reason == protocol.RESPONSE_UNSIGNED


def _strip_signature(response: bytes) -> bytes:
    """Everything up to the end of the body (found from the body length field)."""
    header = len(protocol.RESPONSE_MAGIC) + 1 + protocol.REQUEST_ID_LENGTH + 1
    length = int.from_bytes(response[header : header + 4], "big")
    return response[: header + 4 + length]


def test_response_for_another_request_refused(
    proxy: FrameProxy, signer: RequestSigner, anchor: ec.EllipticCurvePublicKey
) -> None:
    """A genuine, correctly signed reply, replayed for a later request."""
    with _via(proxy, signer, anchor) as c:
        assert c.ping()
        earlier = proxy.responses[-1]
        proxy.on_response = lambda _response: earlier
        with pytest.raises(BadResponseError) as info:
            c.ping()
    assert info.value.reason == protocol.RESPONSE_OTHER_REQUEST


def test_reply_signed_by_another_issuer_refused(
    service: ServiceProcess, hsm_home: IssuerHsmSettings, signer: RequestSigner
) -> None:
    impostor = ec.generate_private_key(ec.SECP256R1()).public_key()
    with (
        IssuerHsmClient(hsm_home.socket_path, signer, issuer_key=impostor) as c,
        pytest.raises(BadResponseError) as info,
    ):
        c.ping()
    assert info.value.reason == protocol.RESPONSE_BAD_SIGNATURE


def _reason(client: IssuerHsmClient, message: bytes) -> tuple[int, str]:
    status, body = client.send_raw(message)
    return status, str(body.get("reason"))


def test_request_encrypted_to_another_key_refused(
    client: IssuerHsmClient, signer: RequestSigner
) -> None:
    other = protocol.ServiceKey.generate().recipient()
    message = protocol.encode_request("xpub", {"path": BASE}, signer.sign, other)
    assert _reason(client, message) == (protocol.STATUS_REFUSED, protocol.REFUSED_UNDECRYPTABLE)


def test_request_in_clear_refused(client: IssuerHsmClient, signer: RequestSigner) -> None:
    message = protocol.encode_request("xpub", {"path": BASE}, signer.sign, None)
    assert _reason(client, message) == (protocol.STATUS_REFUSED, protocol.REFUSED_UNDECRYPTABLE)


def test_tampered_ciphertext_refused(client: IssuerHsmClient, signer: RequestSigner) -> None:
    wire = protocol.decode_request(
        protocol.encode_request("xpub", {"path": BASE}, signer.sign, client.service_key())
    )
    tampered = bytearray(wire.payload)
    tampered[protocol.HPKE_ENC_LENGTH + 2] ^= 0x01
    as_sent = protocol.assemble_request(wire.header, bytes(tampered), lambda _m: wire.signature)
    assert _reason(client, as_sent) == (protocol.STATUS_REFUSED, protocol.REFUSED_BAD_SIGNATURE)
    resigned = protocol.assemble_request(wire.header, bytes(tampered), signer.sign)
    assert _reason(client, resigned) == (protocol.STATUS_REFUSED, protocol.REFUSED_UNDECRYPTABLE)


def test_tampered_header_refused(client: IssuerHsmClient, signer: RequestSigner) -> None:
    """The op changed in the header: the signature breaks; re-signed, the HPKE info does."""
    wire = protocol.decode_request(
        protocol.encode_request("xpub", {"path": BASE}, signer.sign, client.service_key())
    )
    header = protocol.request_header(
        wire.request_id, wire.timestamp_ms, "list-mailers", wire.key_id
    )
    as_sent = protocol.assemble_request(header, wire.payload, lambda _m: wire.signature)
    assert _reason(client, as_sent) == (protocol.STATUS_REFUSED, protocol.REFUSED_BAD_SIGNATURE)
    moved = protocol.assemble_request(
        protocol.request_header(os.urandom(16), wire.timestamp_ms, "xpub", wire.key_id),
        wire.payload,
        signer.sign,
    )
    assert _reason(client, moved) == (protocol.STATUS_REFUSED, protocol.REFUSED_UNDECRYPTABLE)


def test_refusals_are_signed_too(
    proxy: FrameProxy, signer: RequestSigner, anchor: ec.EllipticCurvePublicKey
) -> None:
    with _via(proxy, signer, anchor) as c:
        status, body = c.send_raw(os.urandom(64))  # checked against the anchor in send_raw
    assert (status, body["reason"]) == (protocol.STATUS_REFUSED, protocol.REFUSED_MALFORMED)


def test_client_follows_a_restarted_service(
    service: ServiceProcess, client: IssuerHsmClient
) -> None:
    """A restart makes a new service key; the client's next call is refused as undecryptable,
    it asks for the new key and sends once more."""
    before = client.service_key().key_id
    assert client.ping()
    service.restart()
    assert client.ping()
    assert client.service_key().key_id != before
