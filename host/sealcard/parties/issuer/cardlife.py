"""A card's life after issuance: reported lost, order cancelled, replaced, and the issuer's
commands to the card relayed by the user's computer.

Issuer commands through the user's computer (claim 14, issue 9):

    1. the user system asks for an issuer challenge (`activation.new_challenge`,
       purpose "card-command"), has the card answer it (INTERNAL AUTHENTICATE), then asks
       the card for its own challenge (GET CHALLENGE; nothing else may be sent to the card
       before the command, or the card forgets it);
    2. `card_command` checks the issuer challenge (single use), finds the card in the
       records (it must be this customer's), checks the answer against the issuer
       authentication key *stored* when the card joined the records, decides the command
       and signs it in the issuer-system HSM with that card's device authentication key;
    3. the user system sends ISSUER COMMAND and reports the outcome (`report_card_command`).

What is signed is decided here, not by the client: a card reported lost is terminated
whatever was asked ("terminate sent if the card turns up"); a PIN reset needs an operator's
approval (`approve_pin_reset`, valid 24 hours, used once). The new PIN of a reset crosses the
issuer only inside the signed message (it is in the body the card checks); it is never
stored, logged or returned.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from sealcard.card.constants import (
    PIN_MAX_LENGTH,
    PIN_MIN_LENGTH,
    TAG_PIN,
    Ins,
    IssuerCommand,
)
from sealcard.card.encoding import digits, encode_tlv, issuer_command_message
from sealcard.errors import SealcardError, VerificationError
from sealcard.formats.attestation import verify_internal_authenticate
from sealcard.issuer.accounts import Account, Challenge, Role
from sealcard.issuer.errors import (
    DuplicateRecordError,
    InvalidTransitionError,
    IssuerError,
    RecordNotFoundError,
)
from sealcard.issuer.lifecycle import LOSABLE_STATES, OrderState
from sealcard.issuer.records import Order
from sealcard.parties.issuer.access import require
from sealcard.parties.issuer.activation import ActivationRefusedError, take_challenge
from sealcard.parties.issuer.context import (
    BadRequestError,
    ConflictError,
    IssuerContext,
    NotAllowedError,
    NotFoundError,
    ServiceUnavailableError,
    stamp,
)

CARD_CHALLENGE_LENGTH = 16
COMMANDS = ("check", "reset-pin", "terminate")
PIN_RESET_GRANT = "pin-reset-grant"
_KINDS = {"reset-pin": IssuerCommand.RESET_PIN, "terminate": IssuerCommand.TERMINATE}


def _order(ctx: IssuerContext, account: Account, order_id: int) -> Order:
    """The order, if this account may see it (staff: any; a customer: their own)."""
    try:
        order = ctx.records.get_order(order_id)
    except RecordNotFoundError:
        raise NotFoundError(f"no order {order_id}") from None
    if account.role is Role.CUSTOMER and order.user_id != account.user_id:
        raise NotFoundError(f"no order {order_id}")  # never tell a customer what others have
    return order


def report_lost(ctx: IssuerContext, account: Account, order_id: int, note: str = "") -> Order:
    """The customer (their own card) or an operator reports a card lost or stolen."""
    require(account, Role.CUSTOMER, Role.OPERATOR)
    order = _order(ctx, account, order_id)
    if order.state not in LOSABLE_STATES:
        raise ConflictError(
            f"order {order_id} is {order.state.value}: only a card that was personalized can be"
            " reported lost"
        )
    try:
        return ctx.records.mark_lost(order_id, note=note[:200] or None)
    except (IssuerError, InvalidTransitionError) as exc:
        raise ConflictError(str(exc)) from None


def cancel_order(ctx: IssuerContext, account: Account, order_id: int, note: str = "") -> Order:
    """An operator cancels an order whose card is not personalized yet."""
    require(account, Role.OPERATOR)
    _order(ctx, account, order_id)
    try:
        return ctx.records.cancel_order(order_id, note=note[:200] or None)
    except IssuerError as exc:
        raise ConflictError(str(exc)) from None


def order_replacement(
    ctx: IssuerContext,
    account: Account,
    order_id: int,
    *,
    channel: str = "bureau",
    pin_source: str = "hsm",
    mailer_id: str | None = None,
) -> Order:
    """An operator orders a new card for a lost or terminated one: same derivation element,
    same user key and addresses, through the bureau or activation."""
    require(account, Role.OPERATOR)
    _order(ctx, account, order_id)
    try:
        return ctx.records.request_replacement(
            order_id, pin_source=pin_source, mailer_id=mailer_id, channel=channel
        )
    except DuplicateRecordError as exc:
        raise ConflictError(str(exc)) from None
    except IssuerError as exc:
        raise ConflictError(str(exc)) from None


def approve_pin_reset(ctx: IssuerContext, account: Account, order_id: int) -> str:
    """An operator approves one issuer PIN reset of this order's card through the customer's
    computer (valid `policy.pin_reset_grant_hours`); returns when it expires."""
    require(account, Role.OPERATOR)
    order = _order(ctx, account, order_id)
    if order.state not in LOSABLE_STATES or order.card_serial is None:
        raise ConflictError(
            f"order {order_id} is {order.state.value}: only a working card's PIN is reset"
        )
    customer = ctx.accounts.of_user(order.user_id)
    if customer is None:
        raise ConflictError("the customer has no account to sign in with")
    expires = stamp(ctx.clock() + dt.timedelta(hours=ctx.policy.pin_reset_grant_hours))
    ctx.accounts.new_challenge(
        Challenge(
            secrets.token_urlsafe(18),
            customer.id,
            PIN_RESET_GRANT,
            b"grant",
            order.card_serial,
            None,
            expires,
        )
    )
    ctx.records.audit(
        "card.pin_reset_approved", order_id=order.id, card_serial=order.card_serial,
        detail={"expires_at": expires},
    )  # fmt: skip
    return expires


@dataclass(frozen=True)
class SignedCommand:
    """What the user system relays: the command to send (None: nothing to do), the issuer's
    signature over it for the card's challenge, and why."""

    command: str | None
    signature: bytes
    reason: str


def _auth_key(ctx: IssuerContext, serial: bytes) -> ec.EllipticCurvePublicKey:
    card = ctx.records.card(serial)
    if card is None:
        raise NotFoundError(f"card {serial.hex().upper()} is not in the issuer's records")
    key = load_der_public_key(card.issuer_auth_public_key_der)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConflictError("the stored issuer authentication key is not an EC key")
    return key


def _decide(order: Order, wanted: str) -> tuple[str | None, str]:
    if order.state is OrderState.LOST:
        return "terminate", "the card was reported lost: the issuer terminates it"
    if order.state not in LOSABLE_STATES and order.state not in (
        OrderState.SEALED,
        OrderState.SENT_TO_BUREAU,
    ):
        raise ConflictError(f"the card's order is {order.state.value}: no command for it")
    if wanted == "terminate":
        return "terminate", "terminated at the customer's request"
    if wanted == "reset-pin":
        return "reset-pin", "PIN reset approved by the bank"
    return None, f"nothing to do: the card's order is {order.state.value}"


def card_command(
    ctx: IssuerContext,
    account: Account,
    *,
    challenge_id: str,
    serial: bytes,
    signature: bytes,
    card_challenge: bytes,
    wanted: str,
    new_pin: bytes | None = None,
) -> SignedCommand:
    """Authenticate the card, decide the command, sign it for the card's challenge."""
    require(account, Role.CUSTOMER)
    if wanted not in COMMANDS:
        raise BadRequestError(f"command must be one of {', '.join(COMMANDS)}")
    if len(card_challenge) != CARD_CHALLENGE_LENGTH:
        raise BadRequestError(f"the card's challenge is {CARD_CHALLENGE_LENGTH} bytes")
    challenge = take_challenge(ctx, account, challenge_id, "card-command")
    try:
        order = ctx.records.order_for_card(serial)
    except RecordNotFoundError:
        raise NotFoundError(f"card {serial.hex().upper()} is not one of yours") from None
    if order.user_id != account.user_id:
        raise NotFoundError(f"card {serial.hex().upper()} is not one of yours")
    try:
        verify_internal_authenticate(signature, serial, challenge.challenge, _auth_key(ctx, serial))
    except (VerificationError, ValueError):
        raise ActivationRefusedError(
            "the card did not prove itself: its answer does not verify under the issuer"
            " authentication key recorded for it",
            "altered",
        ) from None
    command, reason = _decide(order, wanted)
    if command is None:
        return SignedCommand(None, b"", reason)
    body = b""
    if command == "reset-pin":
        if new_pin is None:
            raise BadRequestError("a PIN reset needs the new PIN")
        try:
            body = encode_tlv(TAG_PIN, digits(new_pin, "PIN", PIN_MIN_LENGTH, PIN_MAX_LENGTH))
        except ValueError:
            raise BadRequestError(
                f"the new PIN must be {PIN_MIN_LENGTH} to {PIN_MAX_LENGTH} digits"
            ) from None
        assert account.user_id is not None
        if not ctx.accounts.take_grant(account.id, PIN_RESET_GRANT, serial, ctx.now()):
            raise NotAllowedError("a PIN reset needs your bank's approval first: call your bank")
    if ctx.auth_keys is None:
        raise ServiceUnavailableError("the issuer-system HSM is not connected: try again later")
    try:
        wrapped = ctx.records.sealed_output(order.id).device_auth_wrapped_key
    except RecordNotFoundError:
        raise ConflictError("the card has no device authentication key in the records") from None
    kind = _KINDS[command]
    message = issuer_command_message(serial, card_challenge, Ins.ISSUER_COMMAND, kind, 0, body)
    try:
        signed = ctx.auth_keys.sign(wrapped, message)
    except SealcardError as exc:
        raise ServiceUnavailableError(f"the issuer-system HSM could not sign: {exc}") from None
    ctx.records.audit(
        "card.command_signed", order_id=order.id, card_serial=serial,
        detail={"command": command, "relayed_by": "user system", "reason": reason},
    )  # fmt: skip
    return SignedCommand(command, signed, reason)


def report_card_command(
    ctx: IssuerContext, account: Account, serial: bytes, command: str, done: bool, reason: str = ""
) -> Order:
    """The user system's report of a relayed command: a terminate the card accepted moves
    the order to `terminated`; everything else is recorded in the audit log."""
    require(account, Role.CUSTOMER)
    if command not in _KINDS:
        raise BadRequestError("command must be reset-pin or terminate")
    try:
        order = ctx.records.order_for_card(serial)
    except RecordNotFoundError:
        raise NotFoundError(f"card {serial.hex().upper()} is not one of yours") from None
    if order.user_id != account.user_id:
        raise NotFoundError(f"card {serial.hex().upper()} is not one of yours")
    if done and command == "terminate":
        if order.state is OrderState.TERMINATED:
            return order
        try:
            return ctx.records.mark_terminated(order.id, note="reported by the user system")
        except InvalidTransitionError as exc:
            raise ConflictError(str(exc)) from None
    action = "card.pin_reset_by_issuer" if command == "reset-pin" else "card.terminate_failed"
    if not done:
        action = f"card.{command.replace('-', '_')}_failed"
    ctx.records.audit(
        action, order_id=order.id, card_serial=serial,
        detail={"relayed_by": "user system", "reason": reason[:200]},
    )  # fmt: skip
    return order
