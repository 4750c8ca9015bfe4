"""Keys in the token cannot be read; device authentication keys wrap, unwrap and sign."""

from __future__ import annotations

import pkcs11
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import Attribute, Mechanism, ObjectClass

from sealcard.hsm.errors import HsmError
from sealcard.hsm.issuer_keys import ISSUER_KEY_LABEL, SEED_KEK_LABEL, SEED_LABEL
from sealcard.hsm.system_hsm import (
    DEVICE_AUTH_KEK_LABEL,
    REQUEST_KEY_LABEL,
    DeviceAuthKeys,
    RequestSigner,
)
from sealcard.hsm.token import Token

pytestmark = pytest.mark.hsm


@pytest.mark.parametrize(
    ("object_class", "label"),
    [
        (ObjectClass.PRIVATE_KEY, ISSUER_KEY_LABEL),
        (ObjectClass.SECRET_KEY, SEED_LABEL),
        (ObjectClass.SECRET_KEY, SEED_KEK_LABEL),
    ],
)
def test_issuer_token_values_cannot_be_read(
    issuer_token: Token, object_class: ObjectClass, label: str
) -> None:
    with pytest.raises(HsmError, match="sensitive"):
        issuer_token.read_attribute(object_class, label, Attribute.VALUE)
    assert issuer_token.read_attribute(object_class, label, Attribute.SENSITIVE) is True


@pytest.mark.parametrize(
    ("object_class", "label"),
    [(ObjectClass.PRIVATE_KEY, REQUEST_KEY_LABEL), (ObjectClass.SECRET_KEY, DEVICE_AUTH_KEK_LABEL)],
)
def test_system_token_values_cannot_be_read(
    system_token: Token, object_class: ObjectClass, label: str
) -> None:
    with pytest.raises(HsmError, match="sensitive"):
        system_token.read_attribute(object_class, label, Attribute.VALUE)


def test_issuer_key_cannot_be_wrapped_out(system_token: Token, issuer_token: Token) -> None:
    """Non-extractable: not even a token key may wrap it."""
    assert (
        issuer_token.read_attribute(
            ObjectClass.PRIVATE_KEY, ISSUER_KEY_LABEL, Attribute.EXTRACTABLE
        )
        is False
    )
    with issuer_token.session() as s:
        kek = s.key(ObjectClass.SECRET_KEY, SEED_KEK_LABEL)
        issuer_key = s.key(ObjectClass.PRIVATE_KEY, ISSUER_KEY_LABEL)
        with pytest.raises(pkcs11.KeyUnextractable):
            kek.wrap_key(issuer_key, mechanism=Mechanism.AES_KEY_WRAP_PAD)


def test_device_auth_key_round_trip(auth_keys: DeviceAuthKeys) -> None:
    point, wrapped = auth_keys.generate()
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    assert len(point) == 65 and point[0] == 0x04
    assert point.hex() not in wrapped.hex() and len(wrapped) >= 64
    message = b"challenge||command"
    signature = auth_keys.sign(wrapped, message)
    public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        public.verify(signature, message + b"x", ec.ECDSA(hashes.SHA256()))


def test_device_auth_keys_are_not_token_objects(
    auth_keys: DeviceAuthKeys, system_token: Token
) -> None:
    with system_token.session() as s:
        before = len(list(s.session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})))
    auth_keys.generate_many(10)
    with system_token.session() as s:
        after = len(list(s.session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})))
    assert after == before


def test_tampered_wrapped_key_is_refused(auth_keys: DeviceAuthKeys) -> None:
    _, wrapped = auth_keys.generate()
    tampered = bytes([wrapped[0] ^ 0x01]) + wrapped[1:]
    with pytest.raises(HsmError, match="unwrap"):
        auth_keys.sign(tampered, b"data")


def test_generate_many_in_threads_gives_distinct_valid_keys(auth_keys: DeviceAuthKeys) -> None:
    pairs = auth_keys.generate_many(200, threads=3)
    assert len(pairs) == 200
    assert len({p for p, _ in pairs}) == 200
    point, wrapped = pairs[-1]
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    public.verify(auth_keys.sign(wrapped, b"m"), b"m", ec.ECDSA(hashes.SHA256()))


def test_request_signer_signs_in_token(signer: RequestSigner) -> None:
    signature = signer.sign(b"request")
    signer.public_key().verify(signature, b"request", ec.ECDSA(hashes.SHA256()))


def test_token_random_is_fresh(system_token: Token) -> None:
    a, b = system_token.generate_random(32), system_token.generate_random(32)
    assert len(a) == 32 and a != b
