"""Activation through the API with cards made in software (the same flow runs on simulated
cards in tests/sim/test_user_activation.py): both PIN variants, a lost answer asked again,
and every refusal (replay, another provider, altered upload, another issuer, a used card,
no order, wrong role) with nothing recorded."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import pytest
from apiworld import ApiWorld
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from soft_card import SoftCard, make_card

from sealcard.formats.card_upload import card_to_wire
from sealcard.parties.provider import ProviderCA
from sealcard.web.metrics import ApiMetrics


def _order(api: ApiWorld, ref: str, pin_source: str = "none") -> None:
    mailer = ",post" if pin_source == "hsm" else ","
    body = f"customer_ref,channel,pin_source,mailer\n{ref},activation,{pin_source}{mailer}\n"
    operator = {**api.login(*api.operator), "Content-Type": "text/csv"}
    assert api.client.post("/v1/orders/import", content=body, headers=operator).status_code == 200


def _attempt(
    api: ApiWorld, headers: dict[str, str], card: SoftCard, *, wire: dict[str, Any] | None = None
) -> Any:
    made = api.client.post("/v1/challenges", json={"purpose": "activation"}, headers=headers)
    assert made.status_code == 200, made.text
    challenge = base64.b64decode(made.json()["challenge"])
    body = {
        "challenge_id": made.json()["challenge_id"],
        "card": wire or card_to_wire(card.data),
        "signature": base64.b64encode(card.answer(challenge)).decode(),
    }
    return api.client.post("/v1/activation", json=body, headers=headers), body


def _nothing_recorded(api: ApiWorld, card: SoftCard) -> None:
    records = api.records()
    try:
        assert records.card(card.serial) is None
        assert records.audit_entries(card_serial=card.serial) == []
        assert all(o.state == "requested" for o in records.list_orders())
    finally:
        records.close()


def metrics(api: ApiWorld) -> ApiMetrics:
    assert api.services.metrics is not None
    return api.services.metrics


def activations(api: ApiWorld, result: str) -> float:
    value = metrics(api).registry.get_sample_value(
        "sealcard_api_activations_total", {"result": result}
    )
    return value or 0.0


@pytest.mark.parametrize("pin_source", ["none", "hsm"])
def test_activation_seals_for_the_presented_card(api: ApiWorld, pin_source: str) -> None:
    login, password, user_id = api.customers[0]
    _order(api, "C1", pin_source)
    headers = api.login(login, password)
    card = make_card(api.ca, api.hsm.issuer_public_key())
    answer, _ = _attempt(api, headers, card)
    assert answer.status_code == 200, answer.text
    reply = answer.json()
    assert reply["serial"] == card.serial.hex().upper()
    assert reply["pin"] == ("mailed" if pin_source == "hsm" else "user")
    payload = card.open(base64.b64decode(reply["blob"]), api.hsm.issuer_public_key())
    assert (payload.pin is not None) == (pin_source == "hsm")
    from coincurve import PrivateKey

    assert (
        PrivateKey(payload.user_private_key).public_key.format().hex() == reply["user_public_key"]
    )
    again, _ = _attempt(api, headers, card)  # the answer was lost: ask again, same blob
    assert again.status_code == 200 and again.json()["blob"] == reply["blob"]
    report = api.client.post(
        f"/v1/activation/{reply['order_id']}/result", json={"personalized": True}, headers=headers
    )
    assert report.status_code == 200 and report.json()["state"] == "personalized"
    records = api.records()
    try:
        order = records.get_order(reply["order_id"])
        assert order.user_id == user_id and order.card_serial == card.serial
        stored = records.card(card.serial)
        assert stored is not None and stored.pack_serial == "USER-ACTIVATION"
        actions = [e.action for e in records.audit_entries(order_id=order.id)]
        assert "order.card_assigned" in actions and "activation.blob_delivered" in actions
        assert all(e.actor == f"customer:{login}" for e in records.audit_entries(order_id=order.id)
                   if e.action.startswith("activation"))  # fmt: skip
    finally:
        records.close()
    late, _ = _attempt(api, headers, card.personalized())
    assert late.status_code == 422 and late.json()["error"] == "already_used"
    # the metrics: two blobs sent (the second a repeat), one refusal, one report
    assert activations(api, "sealed_blob_sent") == 2 and activations(api, "already_used") == 1
    registry = metrics(api).registry
    assert (
        registry.get_sample_value("sealcard_api_activation_reports_total", {"personalized": "true"})
        == 1
    )
    route = {"method": "POST", "route": "/v1/activation", "status": "422"}
    assert registry.get_sample_value("sealcard_api_requests_total", route) == 1


def test_replayed_upload_is_refused(api: ApiWorld) -> None:
    _order(api, "C1")
    headers = api.login(*api.customers[0][:2])
    card = make_card(api.ca, api.hsm.issuer_public_key())
    first, body = _attempt(api, headers, card)
    assert first.status_code == 200
    replay = api.client.post("/v1/activation", json=body, headers=headers)
    assert replay.status_code == 422 and replay.json()["error"] == "replayed"
    other = api.login(*api.customers[1][:2])  # another customer cannot use my challenge
    _order(api, "C2")
    made = api.client.post("/v1/challenges", json={"purpose": "activation"}, headers=headers)
    stolen = {**body, "challenge_id": made.json()["challenge_id"]}
    answer = api.client.post("/v1/activation", json=stolen, headers=other)
    assert answer.status_code == 422 and answer.json()["error"] == "replayed"
    assert activations(api, "replayed") == 2 and activations(api, "sealed_blob_sent") == 1


def test_expired_challenge_is_refused(api: ApiWorld) -> None:
    _order(api, "C1")
    headers = api.login(*api.customers[0][:2])
    card = make_card(api.ca, api.hsm.issuer_public_key())
    made = api.client.post("/v1/challenges", json={"purpose": "activation"}, headers=headers)
    api.clock.advance(seconds=121)
    challenge = base64.b64decode(made.json()["challenge"])
    body = {
        "challenge_id": made.json()["challenge_id"],
        "card": card_to_wire(card.data),
        "signature": base64.b64encode(card.answer(challenge)).decode(),
    }
    answer = api.client.post("/v1/activation", json=body, headers=headers)
    assert answer.status_code == 422 and answer.json()["error"] == "replayed"
    _nothing_recorded(api, card)


def test_card_of_another_provider_is_refused(api: ApiWorld, tmp_path: Any) -> None:
    _order(api, "C1")
    headers = api.login(*api.customers[0][:2])
    stranger = ProviderCA.create(tmp_path / "other-ca", b"another provider")
    card = make_card(stranger, api.hsm.issuer_public_key())
    answer, _ = _attempt(api, headers, card)
    assert answer.status_code == 422 and answer.json()["error"] == "other_provider"
    assert "not genuine" in answer.json()["message"]
    _nothing_recorded(api, card)


def test_altered_uploads_are_refused(api: ApiWorld) -> None:
    _order(api, "C1")
    headers = api.login(*api.customers[0][:2])
    card = make_card(api.ca, api.hsm.issuer_public_key())
    swapped = make_card(api.ca, api.hsm.issuer_public_key())
    # a device key of the attacker's choosing under the genuine card's certificates
    attacker = rsa.generate_private_key(65537, 2048).public_key()  # never the card's key
    wire = card_to_wire(replace(card.data, device_public_key=attacker))
    answer, _ = _attempt(api, headers, card, wire=wire)
    assert answer.status_code == 422 and answer.json()["error"] == "altered"
    # an answer signed by another key than the certified one
    impostor = replace(card, auth_key=ec.generate_private_key(ec.SECP256R1()))
    answer, _ = _attempt(api, headers, impostor, wire=card_to_wire(card.data))
    assert answer.status_code == 422 and answer.json()["error"] == "altered"
    # a serial changed in the upload
    wire = {**card_to_wire(card.data), "serial": swapped.serial.hex()}
    answer, _ = _attempt(api, headers, card, wire=wire)
    assert answer.status_code == 422 and answer.json()["error"] in ("altered", "other_provider")
    # garbage in a field
    wire = {**card_to_wire(card.data), "device_public_key": "AAAA"}
    answer, _ = _attempt(api, headers, card, wire=wire)
    assert answer.status_code == 400 and "device_public_key" in answer.json()["message"]
    _nothing_recorded(api, card)


def test_card_for_another_issuer_is_refused(api: ApiWorld) -> None:
    _order(api, "C1")
    headers = api.login(*api.customers[0][:2])
    card = make_card(api.ca, ec.generate_private_key(ec.SECP256R1()).public_key())
    answer, _ = _attempt(api, headers, card)
    assert answer.status_code == 422 and answer.json()["error"] == "other_issuer"
    _nothing_recorded(api, card)


def test_card_already_used_by_another_customer_is_refused(api: ApiWorld) -> None:
    _order(api, "C1")
    _order(api, "C2")
    card = make_card(api.ca, api.hsm.issuer_public_key())
    first, _ = _attempt(api, api.login(*api.customers[0][:2]), card)
    assert first.status_code == 200
    second, _ = _attempt(api, api.login(*api.customers[1][:2]), card)
    assert second.status_code == 422 and second.json()["error"] == "already_used"
    records = api.records()
    try:
        (waiting,) = [o for o in records.list_orders() if o.user_id == api.customers[1][2]]
        assert waiting.state == "requested" and waiting.card_serial is None
    finally:
        records.close()


def test_no_order_and_wrong_role(api: ApiWorld) -> None:
    headers = api.login(*api.customers[0][:2])
    card = make_card(api.ca, api.hsm.issuer_public_key())
    answer, _ = _attempt(api, headers, card)
    assert answer.status_code == 404 and "no card order" in answer.json()["message"]
    _nothing_recorded(api, card)
    operator = api.login(*api.operator)
    answer = api.client.post("/v1/challenges", json={"purpose": "activation"}, headers=operator)
    assert answer.status_code == 403


def test_report_for_someone_elses_order_is_refused(api: ApiWorld) -> None:
    _order(api, "C1")
    card = make_card(api.ca, api.hsm.issuer_public_key())
    first, _ = _attempt(api, api.login(*api.customers[0][:2]), card)
    order_id = first.json()["order_id"]
    other = api.login(*api.customers[1][:2])
    answer = api.client.post(
        f"/v1/activation/{order_id}/result", json={"personalized": True}, headers=other
    )
    assert answer.status_code == 404
    mine = api.login(*api.customers[0][:2])
    failed = api.client.post(
        f"/v1/activation/{order_id}/result",
        json={"personalized": False, "reason": "card pulled out"},
        headers=mine,
    )
    assert failed.status_code == 200 and failed.json()["state"] == "sealed"  # try again later
