"""Step A end to end on simulated cards over PC/SC (needs `sealcard sim up`).

The `sim_cards` fixture (tests/sim/conftest.py) gives simulated cards; each
has `.reader` (its PC/SC reader name) and `.index` (see tests/sim/simcards.py).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.serialization import Encoding
from simcards import reset_blank, tear

from sealcard.card import constants as c
from sealcard.card.session import SealcardSession
from sealcard.formats.certificates import CardKeyRole
from sealcard.parties.provider import InitResult, ProviderCA, check_card, initialize_card
from sealcard.transport.apdu import CHAINING_BIT, SHORT_MAX_DATA, Apdu
from sealcard.transport.pcsc import PcscConnection

pytestmark = pytest.mark.sim

RSA_BITS = 2048
RSA_E = 65537
P256_P = 2**256 - 2**224 + 2**192 + 2**96 - 1
P256_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B


@contextmanager
def session_on(card: Any, *, extended: bool = False) -> Iterator[SealcardSession]:
    with PcscConnection.open(card.reader) as connection:
        yield SealcardSession(connection, extended=extended)


@pytest.fixture(scope="module")
def issuer_key() -> ec.EllipticCurvePublicKey:
    return ec.generate_private_key(ec.SECP256R1()).public_key()


@pytest.fixture(scope="module")
def initialized(
    sim_cards: list[Any], ca: ProviderCA, issuer_key: ec.EllipticCurvePublicKey
) -> list[InitResult]:
    results = []
    for i, card in enumerate(sim_cards[:3]):
        reset_blank(card)
        with session_on(card, extended=bool(i % 2)) as session:
            serial = None if i == 0 else bytes([0x5C, 0xA1, 0, i])
            results.append(initialize_card(session, ca, issuer_key, serial))
    return results


def test_initialized_cards_are_closed_and_genuine(
    sim_cards: list[Any], initialized: list[InitResult], ca: ProviderCA
) -> None:
    for card, result in zip(sim_cards, initialized, strict=False):
        with session_on(card) as session:
            assert session.state == c.State.INITIALIZED
            assert session.serial == result.serial
            data, report = check_card(session, ca.certificate)
        assert report.genuine, [f"{x.name}: {x.reason}" for x in report.failures]
        assert data.device_key_certificate == result.device_key_certificate
        assert data.signed_device_key == result.signed_device_key


def test_keys_are_valid(initialized: list[InitResult]) -> None:
    for result in initialized:
        numbers = result.device_public_key.public_numbers()
        assert result.device_public_key.key_size == RSA_BITS
        assert numbers.e == RSA_E
        assert numbers.n % 2 == 1
        assert isinstance(result.issuer_auth_public_key.curve, ec.SECP256R1)
        # decoding already refused points off the curve; check the equation independently
        point = result.issuer_auth_public_key.public_numbers()
        assert (point.y**2 - (point.x**3 - 3 * point.x + P256_B)) % P256_P == 0


def test_keys_differ_between_cards(initialized: list[InitResult]) -> None:
    moduli = {r.device_public_key.public_numbers().n for r in initialized}
    points = {r.issuer_auth_public_key.public_numbers().x for r in initialized}
    assert len(moduli) == len(initialized)
    assert len(points) == len(initialized)
    r_values = set()
    for r in initialized:
        assert r.signed_device_key is not None
        r_values.add(utils.decode_dss_signature(r.signed_device_key)[0])
    assert len(r_values) == len(initialized), "ECDSA nonces repeat: the card RNG is not random"


def test_random_serial_is_8_bytes(initialized: list[InitResult]) -> None:
    assert len(initialized[0].serial) == c.RANDOM_SERIAL_LENGTH


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_certificates_pass_openssl_verify(
    initialized: list[InitResult], ca: ProviderCA, tmp_path: Path
) -> None:
    root = tmp_path / "root.pem"
    root.write_bytes(ca.certificate.public_bytes(Encoding.PEM))
    for i, result in enumerate(initialized):
        for name, cert in (
            ("device", result.device_key_certificate),
            ("auth", result.issuer_auth_key_certificate),
        ):
            assert cert is not None
            leaf = tmp_path / f"{name}{i}.pem"
            leaf.write_bytes(cert.public_bytes(Encoding.PEM))
            done = subprocess.run(
                ["openssl", "verify", "-CAfile", str(root), str(leaf)],
                capture_output=True,
                text=True,
                check=False,
            )
            assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("extended", [False, True])
def test_certificate_chained_or_extended(
    sim_cards: list[Any], ca: ProviderCA, extended: bool
) -> None:
    card = sim_cards[-1]
    reset_blank(card)
    with session_on(card, extended=extended) as session:
        key = session.generate_device_key()
        cert = ca.issue(CardKeyRole.DEVICE, key, b"\x01\x02\x03\x04")
        der = cert.public_bytes(Encoding.DER)
        before = session.traffic.apdus
        session.put_certificate(c.CertRef.DEVICE_KEY, cert)
        sent = session.traffic.apdus - before
        assert sent == (1 if extended else -(-len(der) // SHORT_MAX_DATA))
        assert session.device_key_certificate() == cert


def test_tear_in_a_chained_put_certificate_keeps_the_old_one(
    sim_cards: list[Any], ca: ProviderCA
) -> None:
    card = sim_cards[-1]
    reset_blank(card)
    with session_on(card) as session:
        key = session.generate_device_key()
        old = ca.issue(CardKeyRole.DEVICE, key, b"\x01\x02\x03\x04")
        new = ca.issue(CardKeyRole.DEVICE, key, b"\x05\x06\x07\x08")
        session.put_certificate(c.CertRef.DEVICE_KEY, old)
        first_chunk = new.public_bytes(Encoding.DER)[:SHORT_MAX_DATA]
        chunk = Apdu(
            c.CLA_PROPRIETARY | CHAINING_BIT,
            c.INS_PUT_CERTIFICATE,
            c.CERT_DEVICE_KEY,
            0,
            first_chunk,
        )
        _, sw = session.protocol.transceive(chunk)
        assert sw == c.SW_OK
    tear(card)
    with session_on(card) as session:
        assert session.device_key_certificate() == old
