"""The user system's own checks before it touches the card: a blob for another card, or one
not signed by the issuer key the card holds, is refused and reported, and nothing is
injected; a good blob is injected and reported; the PIN is asked only when the issuer leaves
it to the user."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from coincurve import PrivateKey
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from soft_card import SoftCard, make_card

from sealcard.card.encoding import CardStatus
from sealcard.crypto import sealed_blob
from sealcard.parties import user_system
from sealcard.parties.provider import ProviderCA
from sealcard.parties.user_system import ActivationError, activate_card

USER_KEY = PrivateKey()


class FakeSession:
    """What activate_card asks of a card session, answered by a software card."""

    def __init__(self, card: SoftCard) -> None:
        self.card = card
        self.injected: list[bytes] = []
        self.pins: list[tuple[bytes, bytes]] = []

    def internal_authenticate(self, challenge: bytes) -> bytes:
        return self.card.answer(challenge)

    def personalize(self, blob: bytes) -> CardStatus:
        self.injected.append(blob)
        return None  # type: ignore[return-value]

    def user_public_key(self) -> ec.EllipticCurvePublicKey:
        return ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256K1(), USER_KEY.public_key.format(compressed=False)
        )

    def set_initial_pin_puk(self, pin: bytes, puk: bytes) -> None:
        self.pins.append((pin, puk))


class FakeApi:
    def __init__(self, blob: bytes, pin: str = "user") -> None:
        self.blob = blob
        self.pin = pin
        self.reports: list[tuple[int, bool, str]] = []

    def challenge(self, purpose: str) -> tuple[str, bytes]:
        return "c1", b"\x07" * 32

    def activate(self, challenge_id: str, card: dict[str, Any], signature: bytes) -> dict[str, Any]:
        return {
            "order_id": 5,
            "blob": base64.b64encode(self.blob).decode(),
            "pin": self.pin,
            "user_public_key": USER_KEY.public_key.format().hex(),
        }

    def report_activation(self, order_id: int, personalized: bool, reason: str = "") -> None:
        self.reports.append((order_id, personalized, reason))


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ProviderCA:
    return ProviderCA.create(tmp_path_factory.mktemp("ca") / "ca", b"user system tests")


def _blob(card: SoftCard, issuer: ec.EllipticCurvePrivateKey, serial: bytes | None = None) -> bytes:
    auth = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = auth.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    payload = sealed_blob.SealedPayload(USER_KEY.secret, point, None, None)
    return sealed_blob.seal(
        payload, serial or card.serial, card.device_key.public_key(),
        lambda m: issuer.sign(m, ec.ECDSA(hashes.SHA256())),
    )  # fmt: skip


def _run(card: SoftCard, api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> FakeSession:
    session = FakeSession(card)
    monkeypatch.setattr(user_system, "read_card_public_data", lambda _s: card.data)
    activate_card(session, api, lambda: (b"482916", b"73519264"))  # type: ignore[arg-type]
    return session


def test_blob_for_another_card_is_not_injected(
    ca: ProviderCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    issuer = ec.generate_private_key(ec.SECP256R1())
    card = make_card(ca, issuer.public_key())
    other = make_card(ca, issuer.public_key())
    api = FakeApi(_blob(other, issuer))
    session = FakeSession(card)
    monkeypatch.setattr(user_system, "read_card_public_data", lambda _s: card.data)
    with pytest.raises(ActivationError, match=r"blob for card .* nothing was injected"):
        activate_card(session, api, None)  # type: ignore[arg-type]
    assert session.injected == [] and api.reports[0][:2] == (5, False)


def test_blob_signed_by_another_issuer_is_not_injected(
    ca: ProviderCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    issuer = ec.generate_private_key(ec.SECP256R1())
    card = make_card(ca, issuer.public_key())
    api = FakeApi(_blob(card, ec.generate_private_key(ec.SECP256R1())))
    session = FakeSession(card)
    monkeypatch.setattr(user_system, "read_card_public_data", lambda _s: card.data)
    with pytest.raises(ActivationError, match="not valid"):
        activate_card(session, api, None)  # type: ignore[arg-type]
    assert session.injected == [] and api.reports[0][1] is False


@pytest.mark.parametrize("pin", ["user", "mailed"])
def test_good_blob_is_injected_and_reported(
    ca: ProviderCA, monkeypatch: pytest.MonkeyPatch, pin: str, tmp_path: Path
) -> None:
    issuer = ec.generate_private_key(ec.SECP256R1())
    card = make_card(ca, issuer.public_key())
    api = FakeApi(_blob(card, issuer), pin=pin)
    session = _run(card, api, monkeypatch)
    assert len(session.injected) == 1 and api.reports == [(5, True, "")]
    assert session.pins == ([(b"482916", b"73519264")] if pin == "user" else [])


def test_a_personalized_card_is_not_activated(
    ca: ProviderCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    issuer = ec.generate_private_key(ec.SECP256R1())
    card = make_card(ca, issuer.public_key()).personalized()
    api = FakeApi(b"")
    monkeypatch.setattr(user_system, "read_card_public_data", lambda _s: card.data)
    with pytest.raises(ActivationError, match="it is personalized, not initialized"):
        activate_card(FakeSession(card), api, None)  # type: ignore[arg-type]
    assert api.reports == []
