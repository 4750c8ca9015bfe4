"""Read-only checks of a real sealcard card (opt-in; see conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sealcard.card import constants as c
from sealcard.card.session import SealcardSession
from sealcard.parties.provider import check_card, load_root_certificate, read_card_public_data

pytestmark = pytest.mark.device

RSA_DEVICE_KEY_BITS = 2048
RSA_PUBLIC_EXPONENT = 65537


def test_card_reports_a_known_state_and_extended_length(device_session: SealcardSession) -> None:
    status = device_session.refresh_status()
    assert status.state in set(c.State)
    assert status.capabilities & c.CAP_EXTENDED_LENGTH


def test_public_keys_have_the_documented_shape(device_session: SealcardSession) -> None:
    data = read_card_public_data(device_session)
    if data.state == c.State.BLANK:
        pytest.skip("the card is still blank: nothing to check yet")
    assert isinstance(data.device_public_key, rsa.RSAPublicKey)
    assert data.device_public_key.key_size == RSA_DEVICE_KEY_BITS
    assert data.device_public_key.public_numbers().e == RSA_PUBLIC_EXPONENT
    assert isinstance(data.issuer_auth_public_key, ec.EllipticCurvePublicKey)
    assert isinstance(data.issuer_auth_public_key.curve, ec.SECP256R1)


def test_card_is_genuine_under_the_provider_root(
    device_session: SealcardSession, device_root: Path
) -> None:
    _, report = check_card(device_session, load_root_certificate(device_root))
    assert report.genuine, "; ".join(f"{f.name}: {f.reason}" for f in report.failures)


def test_environment_names_are_documented() -> None:
    """The opt-in variables this tier reads are the ones the README names."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name in ("SEALCARD_DEVICE_READER", "SEALCARD_DEVICE_ROOT"):
        assert name in readme, f"README.md does not document {name}"
