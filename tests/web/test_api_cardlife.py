"""A card's life through the API (cards made in software; tests/sim/test_user_activation.py
does it on simulated cards): loss by the customer or an operator, cancellation, replacement
with the same element, issuer commands relayed by the user system and their refusals."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest
from apiworld import ApiWorld
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from soft_card import SoftCard, make_card

from sealcard.card.constants import TAG_PIN, Ins, IssuerCommand
from sealcard.card.encoding import encode_tlv, issuer_command_message
from sealcard.formats.card_upload import card_to_wire


def _activated(api: ApiWorld, who: int = 0) -> tuple[SoftCard, int, dict[str, str]]:
    login, password, _ = api.customers[who]
    ref = f"C{who + 1}"
    operator = {**api.login(*api.operator), "Content-Type": "text/csv"}
    body = f"customer_ref,channel,pin_source\n{ref},activation,none\n"
    assert api.client.post("/v1/orders/import", content=body, headers=operator).status_code == 200
    headers = api.login(login, password)
    card = make_card(api.ca, api.hsm.issuer_public_key())
    made = api.client.post("/v1/challenges", json={"purpose": "activation"}, headers=headers)
    challenge = base64.b64decode(made.json()["challenge"])
    reply = api.client.post(
        "/v1/activation",
        json={
            "challenge_id": made.json()["challenge_id"],
            "card": card_to_wire(card.data),
            "signature": base64.b64encode(card.answer(challenge)).decode(),
        },
        headers=headers,
    ).json()
    api.client.post(
        f"/v1/activation/{reply['order_id']}/result", json={"personalized": True}, headers=headers
    )
    card.blob = base64.b64decode(reply["blob"])  # type: ignore[attr-defined]
    return card, int(reply["order_id"]), headers


def _command(
    api: ApiWorld, headers: dict[str, str], card: SoftCard, command: str, **extra: Any
) -> tuple[Any, bytes]:
    made = api.client.post("/v1/challenges", json={"purpose": "card-command"}, headers=headers)
    challenge = base64.b64decode(made.json()["challenge"])
    card_challenge = os.urandom(16)
    body = {
        "challenge_id": made.json()["challenge_id"],
        "serial": card.serial.hex(),
        "signature": base64.b64encode(extra.pop("answer", card.answer(challenge))).decode(),
        "card_challenge": base64.b64encode(card_challenge).decode(),
        "command": command,
        **extra,
    }
    return api.client.post("/v1/card-commands", json=body, headers=headers), card_challenge


def _verifies(api: ApiWorld, card: SoftCard, kind: IssuerCommand, body: bytes,
              card_challenge: bytes, signature: str) -> bool:  # fmt: skip
    payload = card.open(card.blob, api.hsm.issuer_public_key())  # type: ignore[attr-defined]
    key = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), payload.device_auth_public_key
    )
    message = issuer_command_message(card.serial, card_challenge, Ins.ISSUER_COMMAND, kind, 0, body)
    try:
        key.verify(base64.b64decode(signature), message, ec.ECDSA(hashes.SHA256()))
    except Exception:
        return False
    return True


def test_lost_card_gets_terminated_and_replaced(api: ApiWorld) -> None:
    card, order_id, headers = _activated(api)
    other = api.login(*api.customers[1][:2])
    assert api.client.post(f"/v1/orders/{order_id}/lost", json={}, headers=other).status_code == 404
    auditor = api.login(*api.auditor)
    assert (
        api.client.post(f"/v1/orders/{order_id}/lost", json={}, headers=auditor).status_code == 403
    )
    lost = api.client.post(f"/v1/orders/{order_id}/lost", json={"note": "train"}, headers=headers)
    assert lost.status_code == 200 and lost.json()["state"] == "lost"
    again = api.client.post(f"/v1/orders/{order_id}/lost", json={}, headers=headers)
    assert again.status_code == 409
    answer, card_challenge = _command(api, headers, card, "check")  # the card turns up
    assert answer.status_code == 200
    reply = answer.json()
    assert reply["command"] == "terminate" and "reported lost" in reply["reason"]
    assert _verifies(api, card, IssuerCommand.TERMINATE, b"", card_challenge, reply["signature"])
    done = api.client.post(
        "/v1/card-commands/result",
        json={"serial": card.serial.hex(), "command": "terminate", "done": True},
        headers=headers,
    )
    assert done.status_code == 200 and done.json()["state"] == "terminated"
    operator = api.login(*api.operator)
    assert (
        api.client.post(
            f"/v1/orders/{order_id}/replacement", json={"channel": "bureau"}, headers=headers
        ).status_code
        == 403
    )  # customers do not order replacements themselves
    new = api.client.post(
        f"/v1/orders/{order_id}/replacement",
        json={"channel": "activation", "pin_source": "none"},
        headers=operator,
    )
    assert new.status_code == 200
    assert new.json()["replaces_order_id"] == order_id
    old = api.client.get(f"/v1/orders/{order_id}", headers=operator).json()
    assert new.json()["derivation_index"] == old["derivation_index"]
    twice = api.client.post(
        f"/v1/orders/{order_id}/replacement", json={"pin_source": "none"}, headers=operator
    )
    assert twice.status_code == 409
    bad = api.client.post(
        f"/v1/orders/{order_id}/replacement", json={"pin_source": "hsm"}, headers=operator
    )
    assert bad.status_code == 409 and "mailer" in bad.json()["message"]


def test_pin_reset_needs_the_banks_approval(api: ApiWorld) -> None:
    card, order_id, headers = _activated(api)
    refused, _ = _command(api, headers, card, "reset-pin", new_pin="5555")
    assert refused.status_code == 403 and "approval" in refused.json()["message"]
    customer_approval = api.client.post(
        f"/v1/orders/{order_id}/pin-reset-approval", headers=headers
    )
    assert customer_approval.status_code == 403
    operator = api.login(*api.operator)
    assert (
        api.client.post(f"/v1/orders/{order_id}/pin-reset-approval", headers=operator).status_code
        == 200
    )
    malformed, _ = _command(api, headers, card, "reset-pin", new_pin="12ab")
    assert malformed.status_code == 400
    answer, card_challenge = _command(api, headers, card, "reset-pin", new_pin="5555")
    assert answer.status_code == 200 and answer.json()["command"] == "reset-pin"
    body = encode_tlv(TAG_PIN, b"5555")
    signature = answer.json()["signature"]
    assert _verifies(api, card, IssuerCommand.RESET_PIN, body, card_challenge, signature)
    assert not _verifies(api, card, IssuerCommand.RESET_PIN, body, os.urandom(16), signature)
    used, _ = _command(api, headers, card, "reset-pin", new_pin="5555")
    assert used.status_code == 403  # one approval, one reset


def test_card_command_refusals(api: ApiWorld) -> None:
    card, _, headers = _activated(api)
    impostor = ec.generate_private_key(ec.SECP256R1())
    fake = impostor.sign(b"anything", ec.ECDSA(hashes.SHA256()))
    answer, _ = _command(api, headers, card, "terminate", answer=fake)
    assert answer.status_code == 422 and answer.json()["error"] == "altered"
    made = api.client.post("/v1/challenges", json={"purpose": "card-command"}, headers=headers)
    challenge = base64.b64decode(made.json()["challenge"])
    body = {
        "challenge_id": made.json()["challenge_id"], "serial": card.serial.hex(),
        "signature": base64.b64encode(card.answer(challenge)).decode(),
        "card_challenge": base64.b64encode(os.urandom(16)).decode(), "command": "check",
    }  # fmt: skip
    assert api.client.post("/v1/card-commands", json=body, headers=headers).status_code == 200
    replay = api.client.post("/v1/card-commands", json=body, headers=headers)
    assert replay.status_code == 422 and replay.json()["error"] == "replayed"
    activation = api.client.post("/v1/challenges", json={"purpose": "activation"}, headers=headers)
    wrong_purpose = {**body, "challenge_id": activation.json()["challenge_id"]}
    assert (
        api.client.post("/v1/card-commands", json=wrong_purpose, headers=headers).json()["error"]
        == "replayed"
    )
    other = api.login(*api.customers[1][:2])
    answer, _ = _command(api, other, card, "terminate")
    assert answer.status_code == 404 and "not one of yours" in answer.json()["message"]
    short = {**body, "card_challenge": base64.b64encode(b"short").decode()}
    assert api.client.post("/v1/card-commands", json=short, headers=headers).status_code == 400
    unknown = {**body, "command": "format-card"}
    assert api.client.post("/v1/card-commands", json=unknown, headers=headers).status_code == 400
    operator = api.login(*api.operator)
    assert api.client.post("/v1/card-commands", json=body, headers=operator).status_code == 403
    assert api.client.post("/v1/card-commands", json=body).status_code == 401


def test_cancel_by_operator_only(api: ApiWorld) -> None:
    operator = api.login(*api.operator)
    api.client.post(
        "/v1/orders/import", content="customer_ref,channel,pin_source\nC2,bureau,none\n",
        headers={**operator, "Content-Type": "text/csv"},
    )  # fmt: skip
    order_id = api.client.get("/v1/orders", headers=operator).json()["orders"][0]["id"]
    customer = api.login(*api.customers[1][:2])
    assert (
        api.client.post(f"/v1/orders/{order_id}/cancel", json={}, headers=customer).status_code
        == 403
    )
    done = api.client.post(
        f"/v1/orders/{order_id}/cancel", json={"note": "moved"}, headers=operator
    )
    assert done.status_code == 200 and done.json()["state"] == "cancelled"
    assert (
        api.client.post(f"/v1/orders/{order_id}/cancel", json={}, headers=operator).status_code
        == 409
    )
    assert api.client.post("/v1/orders/999/cancel", json={}, headers=operator).status_code == 404


@pytest.mark.parametrize("state", ["nonsense"])
def test_order_listing_refuses_unknown_states(api: ApiWorld, state: str) -> None:
    auditor = api.login(*api.auditor)
    answer = api.client.get(f"/v1/orders?state={state}", headers=auditor)
    assert answer.status_code == 400 and "no order state" in answer.json()["message"]
