"""The issuer HSM service through its socket: sealing, derivation, PIN letters, refusals."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sealcard.crypto import sealed_blob
from sealcard.crypto.bip32 import ExtendedPublicKey
from sealcard.crypto.secret_sharing import combine_shares
from sealcard.hsm import protocol
from sealcard.hsm.issuer_client import IssuerHsmClient, SealRequest
from sealcard.hsm.issuer_keys import export_seed_shares
from sealcard.hsm.pin_letter import open_pin_letter
from sealcard.hsm.system_hsm import DeviceAuthKeys, RequestSigner
from sealcard.hsm.token import Token

pytestmark = pytest.mark.hsm

BASE = "m/44'/0'/0'/0"
MAILER_ID = "mailer-test"


@pytest.fixture(scope="module")
def device_key() -> rsa.RSAPrivateKey:
    """Stands in for the card's private device key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def mailer_key(client: IssuerHsmClient) -> rsa.RSAPrivateKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert MAILER_ID in client.register_mailer(MAILER_ID, key.public_key())
    return key


@pytest.fixture(scope="module")
def seed_from_shares(issuer_token: Token) -> bytes:
    """The seed as a backup ceremony would give it back: 3 of 5 SLIP-39 shares."""
    shares = export_seed_shares(issuer_token, 3, 5)
    return combine_shares([shares[4], shares[0], shares[2]])


def _der(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _requests(
    auth_keys: DeviceAuthKeys, device_key: rsa.RSAPrivateKey, indexes: list[int], pin: bool
) -> list[SealRequest]:
    der = _der(device_key)
    return [
        SealRequest(
            order_id=f"order-{i}",
            card_serial=(0x5EA1C000 + i).to_bytes(8, "big"),
            device_public_key_der=der,
            device_auth_public_key=auth_keys.generate()[0],
            derivation_path=f"{BASE}/{i}",
            user_name=f"User {i}",
            user_address=f"{i} Main Street",
            pin_source="hsm" if pin else "none",
            mailer_id=MAILER_ID if pin else None,
        )
        for i in indexes
    ]


def test_user_key_in_blob_equals_independent_bip32(
    client: IssuerHsmClient,
    auth_keys: DeviceAuthKeys,
    device_key: rsa.RSAPrivateKey,
    mailer_key: rsa.RSAPrivateKey,
    seed_from_shares: bytes,
) -> None:
    bip_utils = pytest.importorskip("bip_utils")
    independent = bip_utils.Bip32Slip10Secp256k1.FromSeed(seed_from_shares)
    requests = _requests(auth_keys, device_key, [0, 7, 2_000_000_000], pin=False)
    results = client.seal_batch(requests)
    issuer_key = client.issuer_public_key()
    for request, result in zip(requests, results, strict=True):
        payload = sealed_blob.open_blob(
            result.sealed_blob, request.card_serial, device_key, issuer_key
        )
        expected = independent.DerivePath(request.derivation_path)
        assert payload.user_private_key == expected.PrivateKey().Raw().ToBytes()
        assert result.user_public_key == expected.PublicKey().RawCompressed().ToBytes()
        assert payload.device_auth_public_key == request.device_auth_public_key
        assert payload.pin is None and result.pin_letter is None


def test_xpub_lets_watch_only_tools_derive_user_keys(
    client: IssuerHsmClient, auth_keys: DeviceAuthKeys, device_key: rsa.RSAPrivateKey
) -> None:
    xpub = ExtendedPublicKey.from_xpub(client.xpub(BASE))
    results = client.seal_batch(_requests(auth_keys, device_key, [3, 4], pin=False))
    assert [xpub.child(i).public_key for i in (3, 4)] == [r.user_public_key for r in results]


def test_pin_letter_matches_the_blob_and_opens_with_openssl(
    client: IssuerHsmClient,
    auth_keys: DeviceAuthKeys,
    device_key: rsa.RSAPrivateKey,
    mailer_key: rsa.RSAPrivateKey,
    openssl: str,
    tmp_path: Path,
) -> None:
    request = _requests(auth_keys, device_key, [11], pin=True)[0]
    (result,) = client.seal_batch([request])
    assert result.pin_letter is not None
    payload = sealed_blob.open_blob(
        result.sealed_blob, request.card_serial, device_key, client.issuer_public_key()
    )
    assert payload.pin is not None and len(payload.pin) == 6 and payload.pin.isdigit()
    assert payload.puk is not None and len(payload.puk) == 8
    letter = open_pin_letter(result.pin_letter, mailer_key, client.issuer_public_key())
    assert (letter.pin, letter.puk) == (payload.pin, payload.puk)
    assert (letter.serial, letter.name) == (request.card_serial, request.user_name)

    (tmp_path / "letter.der").write_bytes(result.pin_letter)
    cert = client.issuer_certificate()
    (tmp_path / "issuer.der").write_bytes(cert)
    subprocess.run(
        [
            openssl,
            "x509",
            "-inform",
            "DER",
            "-in",
            str(tmp_path / "issuer.der"),
            "-out",
            str(tmp_path / "issuer.pem"),
        ],
        check=True,
        capture_output=True,
    )
    (tmp_path / "mailer.pem").write_bytes(
        mailer_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    subprocess.run(
        [
            openssl,
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            str(tmp_path / "letter.der"),
            "-CAfile",
            str(tmp_path / "issuer.pem"),
            "-out",
            str(tmp_path / "env.der"),
            "-outform",
            "DER",
        ],
        check=True,
        capture_output=True,
    )
    opened = subprocess.run(
        [
            openssl,
            "cms",
            "-decrypt",
            "-inform",
            "DER",
            "-in",
            str(tmp_path / "env.der"),
            "-inkey",
            str(tmp_path / "mailer.pem"),
        ],
        check=True,
        capture_output=True,
    )
    assert payload.pin.decode() in opened.stdout.decode()
    assert payload.puk.decode() in opened.stdout.decode()


def test_each_card_gets_its_own_pin(
    client: IssuerHsmClient,
    auth_keys: DeviceAuthKeys,
    device_key: rsa.RSAPrivateKey,
    mailer_key: rsa.RSAPrivateKey,
) -> None:
    results = client.seal_batch(_requests(auth_keys, device_key, list(range(20, 40)), pin=True))
    pins = {
        open_pin_letter(r.pin_letter or b"", mailer_key, client.issuer_public_key()).puk
        for r in results
    }
    assert len(pins) == 20


def test_unknown_mailer_refuses_that_card_only(
    client: IssuerHsmClient,
    auth_keys: DeviceAuthKeys,
    device_key: rsa.RSAPrivateKey,
    mailer_key: rsa.RSAPrivateKey,
) -> None:
    good, other = _requests(auth_keys, device_key, [50, 51], pin=True)
    bad = SealRequest(**{**other.__dict__, "mailer_id": "nobody"})
    sealed, refused = client.seal_batch([good, bad])
    assert sealed.refusal is None and sealed.pin_letter is not None
    assert refused.refusal is not None
    assert refused.refusal.reason == protocol.CARD_UNKNOWN_MAILER
    assert "nobody" in refused.refusal.message


def _raw(client: IssuerHsmClient, message: bytes) -> tuple[int, str]:
    status, body = client.send_raw(message)
    return status, str(body.get("reason"))


def _ping(client: IssuerHsmClient, signer: RequestSigner, **kwargs: object) -> bytes:
    return protocol.encode_request(
        "xpub",
        {"path": BASE},
        signer.sign,
        client.service_key(),
        **kwargs,  # type: ignore[arg-type]
    )


def test_signed_request_accepted(client: IssuerHsmClient, signer: RequestSigner) -> None:
    status, body = client.send_raw(_ping(client, signer))
    assert status == protocol.STATUS_OK and body["xpub"].startswith("xpub")


def test_unsigned_request_refused(client: IssuerHsmClient, signer: RequestSigner) -> None:
    unsigned = _strip_signature(_ping(client, signer))  # everything before the signature length
    assert _raw(client, unsigned) == (protocol.STATUS_REFUSED, protocol.REFUSED_UNSIGNED)


def _strip_signature(message: bytes) -> bytes:
    request = protocol.decode_request(message)
    return request.signed_message


def test_tampered_request_refused(client: IssuerHsmClient, signer: RequestSigner) -> None:
    message = bytearray(_ping(client, signer))
    message[-80] ^= 0x01  # in the ciphertext (the signature is at most 72 bytes)
    assert _raw(client, bytes(message)) == (
        protocol.STATUS_REFUSED,
        protocol.REFUSED_BAD_SIGNATURE,
    )


def test_request_signed_by_another_key_refused(client: IssuerHsmClient) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    message = protocol.encode_request(
        "xpub",
        {"path": BASE},
        lambda m: other.sign(m, ec.ECDSA(hashes.SHA256())),
        client.service_key(),
    )
    assert _raw(client, message) == (protocol.STATUS_REFUSED, protocol.REFUSED_BAD_SIGNATURE)


def test_replayed_request_refused(client: IssuerHsmClient, signer: RequestSigner) -> None:
    message = _ping(client, signer)
    assert _raw(client, message)[0] == protocol.STATUS_OK
    assert _raw(client, message) == (protocol.STATUS_REFUSED, protocol.REFUSED_REPLAY)


def test_stale_request_refused(client: IssuerHsmClient, signer: RequestSigner) -> None:
    old = int(time.time() * 1000) - 3_600_000
    assert _raw(client, _ping(client, signer, timestamp_ms=old)) == (
        protocol.STATUS_REFUSED,
        protocol.REFUSED_STALE,
    )


def test_unknown_operation_refused(client: IssuerHsmClient, signer: RequestSigner) -> None:
    message = protocol.encode_request("export-seed", {}, signer.sign, client.service_key())
    assert _raw(client, message) == (protocol.STATUS_REFUSED, protocol.REFUSED_UNKNOWN_OP)


def test_garbage_refused(client: IssuerHsmClient) -> None:
    assert _raw(client, os.urandom(100))[0] == protocol.STATUS_REFUSED
