"""Bad requests to the real issuer HSM service: each gets a signed, typed refusal on the same
connection (the service never drops a client over one), and one bad card of a batch never
costs the others their seal."""

from __future__ import annotations

import base64
import socket
import struct
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hsm_helpers import FrameProxy, ServiceProcess

from sealcard.crypto import sealed_blob
from sealcard.hsm import protocol
from sealcard.hsm.config import IssuerHsmSettings
from sealcard.hsm.errors import RequestRefused
from sealcard.hsm.issuer_client import IssuerHsmClient, SealRequest, issuer_key_from_certificate
from sealcard.hsm.system_hsm import DeviceAuthKeys, RequestSigner

pytestmark = pytest.mark.hsm

BASE = "m/44'/0'/0'/0"
MAILER = "bad-requests-mailer"


@pytest.fixture(scope="module")
def anchor(hsm_home: IssuerHsmSettings) -> ec.EllipticCurvePublicKey:
    return issuer_key_from_certificate(hsm_home.issuer_certificate.read_bytes())


@pytest.fixture
def proxy(service: ServiceProcess, hsm_home: IssuerHsmSettings) -> Iterator[FrameProxy]:
    p = FrameProxy(hsm_home.socket_path)
    yield p
    p.close()


@pytest.fixture
def proxied(
    proxy: FrameProxy, signer: RequestSigner, anchor: ec.EllipticCurvePublicKey
) -> Iterator[IssuerHsmClient]:
    with IssuerHsmClient(proxy.path, signer, issuer_key=anchor) as c:
        yield c


def _spki(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize(
    ("key_der", "words"),
    [
        (b"this is not a key", "not a DER"),
        (b"\x30\x03\x02\x01\x00", "not a DER"),
        (_spki(ec.generate_private_key(ec.SECP256R1())), "RSA"),
        (_spki(rsa.generate_private_key(65537, 1024)), "RSA of 2048"),
    ],
)
def test_bad_mailer_key_is_refused_on_the_same_connection(
    proxy: FrameProxy, proxied: IssuerHsmClient, key_der: bytes, words: str
) -> None:
    """Issue 7: a malformed key crashed a service thread, the client re-sent the request on a
    new connection, and the user read "replay: ..." instead of the real reason."""
    assert proxied.ping()
    with pytest.raises(RequestRefused) as info:
        proxied.register_mailer("broken-key", key_der)
    assert info.value.reason == protocol.REFUSED_MALFORMED
    assert words in str(info.value)
    assert "malformed: malformed" not in str(info.value)  # the reason once, not twice
    assert proxied.ping()  # the service still answers, on the same connection
    assert proxy.connections == 1
    assert "broken-key" not in proxied.mailers()


def test_bad_mailer_id_is_refused(proxied: IssuerHsmClient) -> None:
    key = rsa.generate_private_key(65537, 2048)
    for bad in ("", "x" * 65, "tab\there"):
        with pytest.raises(RequestRefused) as info:
            proxied.register_mailer(bad, key.public_key())
        assert info.value.reason == protocol.REFUSED_MALFORMED


@pytest.mark.parametrize(
    ("op", "body"),
    [
        ("xpub", {"path": 12345}),
        ("xpub", {"path": "m/not/a/path"}),
        ("seal-batch", {"cards": "everything"}),
        ("register-mailer", {"mailer_id": "m", "public_key_der": 42}),
        ("register-mailer", {"mailer_id": "m", "public_key_der": "%%% not base64"}),
    ],
)
def test_bodies_of_the_wrong_shape_are_refused(
    proxy: FrameProxy, proxied: IssuerHsmClient, op: str, body: dict[str, object]
) -> None:
    with pytest.raises(RequestRefused) as info:
        proxied.call(op, body)
    assert info.value.reason == protocol.REFUSED_MALFORMED
    assert proxied.ping()
    assert proxy.connections == 1


def test_one_bad_card_does_not_stop_the_batch(
    client: IssuerHsmClient, auth_keys: DeviceAuthKeys
) -> None:
    mailer = rsa.generate_private_key(65537, 2048)
    client.register_mailer(MAILER, mailer.public_key())
    device = rsa.generate_private_key(65537, 2048)
    point = auth_keys.generate()[0]

    def card(n: int, **changes: object) -> SealRequest:
        fields: dict[str, object] = {
            "order_id": f"o{n}",
            "card_serial": (0xBAD0000 + n).to_bytes(8, "big"),
            "device_public_key_der": _spki(device),
            "device_auth_public_key": point,
            "derivation_path": f"{BASE}/{900 + n}",
            "user_name": "N",
            "user_address": "A",
            "pin_source": "hsm",
            "mailer_id": MAILER,
        }
        fields.update(changes)
        return SealRequest(**fields)  # type: ignore[arg-type]

    requests = [
        card(0),
        card(1, mailer_id="no-such-mailer"),
        card(2, device_public_key_der=_spki(ec.generate_private_key(ec.SECP256R1()))),
        card(3, device_public_key_der=b"garbage"),
        card(4, derivation_path="m/x"),
        card(5, pin_source="fax"),
        card(6),
    ]
    results = client.seal_batch(requests)
    assert [r.order_id for r in results] == [r.order_id for r in requests]
    reasons = [None if r.refusal is None else r.refusal.reason for r in results]
    assert reasons == [
        None,
        protocol.CARD_UNKNOWN_MAILER,
        protocol.CARD_BAD_DEVICE_KEY,
        protocol.CARD_BAD_DEVICE_KEY,
        protocol.CARD_MALFORMED,
        protocol.CARD_MALFORMED,
        None,
    ]
    issuer_key = client.issuer_public_key()
    for request, result in ((requests[0], results[0]), (requests[6], results[6])):
        payload = sealed_blob.open_blob(result.sealed_blob, request.card_serial, device, issuer_key)
        assert payload.pin is not None and result.pin_letter is not None


def test_a_card_entry_that_is_not_an_object_is_refused_alone(proxied: IssuerHsmClient) -> None:
    reply = proxied.call("seal-batch", {"cards": ["just a string", 7]})
    assert [r["error"]["reason"] for r in reply["results"]] == [protocol.CARD_MALFORMED] * 2
    assert [r["order_id"] for r in reply["results"]] == [None, None]


def test_an_oversized_frame_is_answered_before_the_connection_closes(
    hsm_home: IssuerHsmSettings, anchor: ec.EllipticCurvePublicKey, service: ServiceProcess
) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(hsm_home.socket_path))
        sock.sendall(struct.pack(">I", protocol.MAX_FRAME + 1))
        reply = protocol.recv_frame(sock)
        status, body = protocol.decode_response(reply, bytes(protocol.REQUEST_ID_LENGTH), anchor)
        assert (status, body["reason"]) == (protocol.STATUS_REFUSED, protocol.REFUSED_MALFORMED)
        assert sock.recv(1) == b""  # then closed: the stream cannot be framed any more


def test_register_mailer_with_base64_of_garbage(proxied: IssuerHsmClient) -> None:
    with pytest.raises(RequestRefused) as info:
        proxied.call(
            "register-mailer",
            {"mailer_id": "m", "public_key_der": base64.b64encode(b"\x00" * 40).decode()},
        )
    assert info.value.reason == protocol.REFUSED_MALFORMED
