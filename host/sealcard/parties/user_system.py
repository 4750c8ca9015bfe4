"""The user system (M4, M77-M90): the customer's own computer between their card and the
issuer's HTTPS API. Activation of an initialized card, and relaying the issuer's commands.

No printing, no prompting: the caller passes a signed-in `IssuerApi` and, for a PIN the user
chooses, a callback that asks for it. The card is left wholly old or wholly new: a blob is
injected only after it was checked to be for this card and signed by the issuer key the card
holds (the card checks again), and PIN and PUK are set only after the card took the blob.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sealcard.card.constants import PIN_MAX_LENGTH, PIN_MIN_LENGTH, TAG_PIN, IssuerCommand, State
from sealcard.card.encoding import Secret, digits, encode_tlv
from sealcard.card.secp256k1 import point_bytes
from sealcard.card.session import SealcardSession
from sealcard.crypto import sealed_blob
from sealcard.errors import SealcardError, VerificationError
from sealcard.formats.card_upload import card_to_wire
from sealcard.parties.provider import read_card_public_data
from sealcard.transport.errors import ApduError

#: Asked for the first PIN and PUK when the issuer leaves them to the user.
PinChooser = Callable[[], tuple[Secret, Secret]]


class IssuerApi(Protocol):
    """The issuer's side (`sealcard.parties.issuer_api.IssuerApiClient`, signed in)."""

    def challenge(self, purpose: str) -> tuple[str, bytes]: ...

    def activate(
        self, challenge_id: str, card: dict[str, Any], signature: bytes
    ) -> dict[str, Any]: ...

    def report_activation(self, order_id: int, personalized: bool, reason: str = "") -> None: ...

    def card_command(self, body: dict[str, Any]) -> dict[str, Any]: ...

    def report_card_command(self, serial: bytes, command: str, done: bool, reason: str) -> None: ...


class ActivationError(SealcardError):
    """The card cannot be activated here (says why); the card is unchanged."""


@dataclass(frozen=True)
class ActivationOutcome:
    """An activated card: serial, order, user public key (compressed hex), how the PIN came."""

    serial: bytes
    order_id: int
    user_public_key: str
    pin: str  # "user": chosen now on the card; "mailed": in the issuer's letter


def activate_card(
    session: SealcardSession, api: IssuerApi, choose_pin: PinChooser | None
) -> ActivationOutcome:
    """Activate the initialized card in `session` with the issuer (module doc).

    `choose_pin` is called only when the issuer leaves PIN and PUK to the user; without it,
    such a card is left personalized with no PIN (`sealcard card pin set` sets it later)."""
    data = read_card_public_data(session)
    if data.state != State.INITIALIZED or data.serial is None or data.issuer_public_key is None:
        state = "personalized" if data.state == State.PERSONALIZED else f"state {data.state}"
        raise ActivationError(f"this card cannot be activated: it is {state}, not initialized")
    serial = data.serial
    challenge_id, challenge = api.challenge("activation")
    answer = session.internal_authenticate(challenge)
    reply = api.activate(challenge_id, card_to_wire(data), answer)
    order_id = int(reply["order_id"])
    blob = base64.b64decode(str(reply["blob"]))
    try:
        parsed = sealed_blob.parse(blob)
        if parsed.serial != serial:
            raise ActivationError(
                f"the issuer sent a blob for card {parsed.serial.hex().upper()}, this card is"
                f" {serial.hex().upper()}: nothing was injected"
            )
        sealed_blob.verify_signature(parsed, data.issuer_public_key)
    except (sealed_blob.SealedBlobError, VerificationError) as exc:
        api.report_activation(order_id, False, f"blob refused by the user system: {exc}")
        raise ActivationError(
            f"the blob from the issuer is not valid: {exc}: nothing was injected"
        ) from None
    except ActivationError as exc:
        api.report_activation(order_id, False, str(exc))
        raise
    try:
        session.personalize(blob)
    except ApduError as exc:
        api.report_activation(order_id, False, f"the card refused the blob: {exc}")
        raise
    key = point_bytes(session.user_public_key(), compressed=True).hex()
    if key != str(reply["user_public_key"]):
        api.report_activation(order_id, False, "the card's user key is not the issuer's")
        raise ActivationError("the card holds another user key than the issuer sealed")
    api.report_activation(order_id, True)
    pin = "mailed" if reply.get("pin") == "mailed" else "user"
    if pin == "user" and choose_pin is not None:
        first_pin, puk = choose_pin()
        session.set_initial_pin_puk(first_pin, puk)
    return ActivationOutcome(serial, order_id, key, pin)


@dataclass(frozen=True)
class CommandOutcome:
    """What the issuer decided for the card, and whether the card carried it out."""

    serial: bytes
    command: str | None
    done: bool
    reason: str


def relay_issuer_command(
    session: SealcardSession,
    api: IssuerApi,
    wanted: str,
    new_pin: Secret | None = None,
) -> CommandOutcome:
    """Have the issuer authenticate the card, sign a command for it and relay it.

    `wanted`: "check" (the issuer may still send a terminate for a lost card), "reset-pin"
    (needs `new_pin` and the bank's approval) or "terminate". The new PIN goes to the issuer
    only inside the request body; nothing else is sent to the card between GET CHALLENGE and
    ISSUER COMMAND (the card forgets its challenge on any other command)."""
    status = session.refresh_status()
    serial = status.serial
    if serial is None or status.state != State.PERSONALIZED:
        raise ActivationError("issuer commands need a personalized card")
    challenge_id, challenge = api.challenge("card-command")
    answer = session.internal_authenticate(challenge)
    card_challenge = session.get_challenge()
    body: dict[str, Any] = {
        "challenge_id": challenge_id,
        "serial": serial.hex(),
        "signature": base64.b64encode(answer).decode("ascii"),
        "card_challenge": base64.b64encode(card_challenge).decode("ascii"),
        "command": wanted,
    }
    if new_pin is not None:
        body["new_pin"] = digits(new_pin, "PIN", PIN_MIN_LENGTH, PIN_MAX_LENGTH).decode("ascii")
    reply = api.card_command(body)
    command = reply.get("command")
    reason = str(reply.get("reason", ""))
    if command is None:
        return CommandOutcome(serial, None, False, reason)
    signature = base64.b64decode(str(reply["signature"]))
    if command == "terminate":
        kind, command_body = IssuerCommand.TERMINATE, b""
    elif command == "reset-pin" and new_pin is not None:
        pin = digits(new_pin, "PIN", PIN_MIN_LENGTH, PIN_MAX_LENGTH)
        kind, command_body = IssuerCommand.RESET_PIN, encode_tlv(TAG_PIN, pin)
    else:
        raise ActivationError(f"the issuer sent an unexpected command {command!r}")
    try:
        session.send_issuer_command(kind, command_body, signature)
    except ApduError as exc:
        api.report_card_command(serial, str(command), False, f"the card refused: {exc}")
        raise
    api.report_card_command(serial, str(command), True, reason)
    return CommandOutcome(serial, str(command), True, reason)
