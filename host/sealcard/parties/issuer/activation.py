"""Activation on the user's computer (M4, M77-M82): the customer presents an initialized card,
the card proves itself, the issuer takes it into its records, seals a blob for it through the
issuer HSM and hands the blob back for the user system to inject.

    1. `new_challenge`: a fresh single-use issuer challenge (32 random bytes, 2 minutes).
    2. the user system: the card's public data and INTERNAL AUTHENTICATE over the challenge.
    3. `activate`: every check first, in this order (each refusal says why; nothing is
       recorded but the challenge's use): the challenge (unknown, someone else's, expired or
       used: a replay), the attestation against the provider roots this issuer trusts (a card
       of another provider, or an altered key or certificate), the card's answer under its
       *certified* issuer authentication key (an altered or replayed answer), this issuer's
       key on the card, the card still initialized and not in any order (an already used
       card), an activation order waiting for this customer. Then commit point A (card and
       derivation element bound to the order), sealing by `sealcard.issuer.batch` (commit
       point B), and the blob.
    4. `report_activation`: the user system says whether the card took the blob.

Asking again with the same card after a lost answer returns the same stored blob (it is
encrypted to that card and useless to anyone else); the order moves on only on the report.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sealcard.card.constants import State
from sealcard.errors import SealcardError, VerificationError
from sealcard.formats.attestation import (
    AttestationReport,
    CardPublicData,
    certified_issuer_auth_key,
    verify_card,
    verify_internal_authenticate,
)
from sealcard.issuer.accounts import Account, Challenge, Role
from sealcard.issuer.batch import seal_orders
from sealcard.issuer.errors import (
    CardAlreadyUsedError,
    ConcurrentUpdateError,
    IssuerError,
    RecordNotFoundError,
)
from sealcard.issuer.handover import CardIntakeError, card_init_from_public_data
from sealcard.issuer.lifecycle import OrderState
from sealcard.issuer.records import Order
from sealcard.parties.issuer.access import require
from sealcard.parties.issuer.context import (
    ConflictError,
    IssuerContext,
    NotFoundError,
    RefusedError,
    ServiceUnavailableError,
    stamp,
)

CHALLENGE_BYTES = 32
#: On SQLite one sealer at a time: an activation waits this long for another's (or a batch's)
SEALER_WAIT_S = 20.0
PURPOSES = ("activation", "card-command")


class ActivationRefusedError(RefusedError):
    """The card or the upload is refused; `code` names the reason for scripts:
    replayed, other_provider, altered, other_issuer, already_used, no_order, on_hold (the
    issuer HSM refused to seal for this card: the order is held for an operator)."""


@dataclass(frozen=True)
class Activation:
    """The sealed blob for the presented card, and how its PIN is made: "user" (chosen on
    the card after injection) or "mailed" (made by the issuer HSM, in a letter)."""

    order_id: int
    serial: bytes
    blob: bytes
    pin: str
    user_public_key: bytes


def new_challenge(ctx: IssuerContext, account: Account, purpose: str) -> Challenge:
    """A fresh issuer challenge for this customer's card, usable once."""
    require(account, Role.CUSTOMER)
    if purpose not in PURPOSES:
        raise RefusedError(f"purpose must be one of {', '.join(PURPOSES)}", "malformed")
    expires = stamp(ctx.clock() + dt.timedelta(seconds=ctx.policy.challenge_seconds))
    challenge = Challenge(
        secrets.token_urlsafe(18), account.id, purpose, os.urandom(CHALLENGE_BYTES), None, None,
        expires,
    )  # fmt: skip
    ctx.accounts.new_challenge(challenge)
    return challenge


def take_challenge(
    ctx: IssuerContext, account: Account, challenge_id: str, purpose: str
) -> Challenge:
    """Use a challenge of this account once, or refuse it as a replay."""
    taken = ctx.accounts.take_challenge(challenge_id, account.id, purpose, ctx.now())
    if taken is None:
        raise ActivationRefusedError(
            "the challenge is unknown, expired or already used (a replayed upload?):"
            " ask for a new one",
            "replayed",
        )
    return taken


def _genuine(ctx: IssuerContext, card: CardPublicData) -> AttestationReport:
    if not ctx.provider_roots:
        raise ServiceUnavailableError(
            "this issuer trusts no card provider root ([api] provider_roots)"
        )
    reports = [verify_card(root, card) for root in ctx.provider_roots]
    for report in reports:
        if report.genuine:
            return report
    failed = reports[0].failures
    code = "other_provider" if any("signed" in c.name for c in failed) else "altered"
    reasons = "; ".join(f"{c.name}: {c.reason}" for c in failed)
    raise ActivationRefusedError(
        f"the card is not genuine under the card provider this issuer trusts: {reasons}", code
    )


def check_card(
    ctx: IssuerContext, card: CardPublicData, challenge: bytes, signature: bytes
) -> AttestationReport:
    """The card's attestation and its answer to `challenge` (under the certified key)."""
    report = _genuine(ctx, card)
    key = certified_issuer_auth_key(report, card)
    if key is None or card.serial is None:
        raise ActivationRefusedError(
            "the card has no certified issuer authentication key", "altered"
        )
    try:
        verify_internal_authenticate(signature, card.serial, challenge, key)
    except (VerificationError, ValueError):
        raise ActivationRefusedError(
            "the card's answer to the challenge does not verify under its certified key"
            " (an altered or replayed upload)",
            "altered",
        ) from None
    return report


def _same_issuer(ctx: IssuerContext, card: CardPublicData) -> None:
    if ctx.issuer_public_key is None:
        raise ServiceUnavailableError("the issuer key is not known here (issuer HSM not connected)")
    form = (Encoding.X962, PublicFormat.UncompressedPoint)
    theirs = None if card.issuer_public_key is None else card.issuer_public_key.public_bytes(*form)
    if theirs != ctx.issuer_public_key.public_bytes(*form):
        raise ActivationRefusedError("the card holds another issuer's public key", "other_issuer")


def _refuse_if_held(order: Order) -> None:
    """An order the issuer HSM refused to seal (held, `sealcard.issuer.batch`) waits for the
    bank: asking again cannot help until an operator retries or cancels it."""
    if order.held:
        raise ActivationRefusedError(
            f"the issuer HSM could not seal a blob for this card ({order.failure_reason});"
            f" your bank has to look at order {order.id}",
            "on_hold",
        )


def activate(
    ctx: IssuerContext,
    account: Account,
    challenge_id: str,
    card: CardPublicData,
    signature: bytes,
) -> Activation:
    """Check everything, record the card, seal its blob, return it (module doc)."""
    require(account, Role.CUSTOMER)
    assert account.user_id is not None
    challenge = take_challenge(ctx, account, challenge_id, "activation")
    report = check_card(ctx, card, challenge.challenge, signature)
    _same_issuer(ctx, card)
    assert card.serial is not None and ctx.issuer_public_key is not None
    serial = card.serial
    order = ctx.records.activation_order(account.user_id)
    known = ctx.records.card(serial)
    resuming = order is not None and order.card_serial == serial
    if not resuming and (
        card.state != State.INITIALIZED or (known and known.status != "available")
    ):
        raise ActivationRefusedError(
            f"card {serial.hex().upper()} was already used (personalized or in another order)",
            "already_used",
        )
    if order is None:
        raise NotFoundError("no card order of yours waits for activation: ask your bank")
    if order.card_serial is not None and not resuming:
        raise ConflictError(
            f"your activation is under way with card {order.card_serial.hex().upper()}:"
            " finish it with that card"
        )
    if ctx.auth_keys is None or ctx.hsm is None:
        raise ServiceUnavailableError("the issuer HSM is not connected: try again later")
    if order.state is OrderState.REQUESTED:
        try:
            init = card_init_from_public_data(card, report, ctx.issuer_public_key)
            with ctx.records.db.transaction() as tx:  # commit point A
                ctx.records.bind_activation_card(tx, order.id, init)
        except CardAlreadyUsedError as exc:
            raise ActivationRefusedError(str(exc), "already_used") from None
        except CardIntakeError as exc:
            raise ActivationRefusedError(str(exc), "altered") from None
        except (ConcurrentUpdateError, IssuerError) as exc:
            raise ConflictError(str(exc)) from None
    _refuse_if_held(ctx.records.get_order(order.id))
    if ctx.records.get_order(order.id).state is OrderState.CARD_ASSIGNED:
        try:
            sealing = seal_orders(
                ctx.records,
                ctx.auth_keys,
                ctx.hsm,
                order_ids=[order.id],
                issuer_public_key=ctx.issuer_public_key,
                wait_for_sealer_s=SEALER_WAIT_S,
            )
        except ConcurrentUpdateError:
            pass  # another sealer (a bureau batch resuming it) sealed it first
        except SealcardError as exc:
            raise ServiceUnavailableError(f"sealing failed, try again: {exc}") from None
        else:
            if sealing.held:
                _refuse_if_held(ctx.records.get_order(order.id))
    output = ctx.records.sealed_output(order.id)
    ctx.records.audit(
        "activation.blob_delivered", order_id=order.id, card_serial=serial,
        detail={"pin_source": order.pin_source},
    )  # fmt: skip
    return Activation(
        order.id,
        serial,
        output.sealed_blob,
        "mailed" if order.pin_source == "hsm" else "user",
        output.user_public_key,
    )


def report_activation(
    ctx: IssuerContext, account: Account, order_id: int, personalized: bool, reason: str = ""
) -> OrderState:
    """The user system's report: the card took the blob (the order becomes `personalized`),
    or it did not (recorded; the order stays `sealed`, so the same blob can be tried again)."""
    require(account, Role.CUSTOMER)
    try:
        order = ctx.records.get_order(order_id)
    except RecordNotFoundError:
        raise NotFoundError(f"no activation order {order_id} of yours") from None
    if order.user_id != account.user_id or order.channel != "activation":
        raise NotFoundError(f"no activation order {order_id} of yours")
    if order.state is not OrderState.SEALED:
        raise ConflictError(f"order {order_id} is {order.state.value}, not waiting for a report")
    if personalized:
        ctx.records.advance_order(
            order_id, OrderState.PERSONALIZED, note="reported by the user system"
        )
        return OrderState.PERSONALIZED
    ctx.records.audit(
        "activation.inject_failed", order_id=order_id, card_serial=order.card_serial,
        detail={"reason": reason[:200]},
    )  # fmt: skip
    return OrderState.SEALED
