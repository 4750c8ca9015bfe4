"""The life cycle of an order: the one place that says which state may follow which.

    requested -> card_assigned -> sealed -> sent_to_bureau -> personalized -> shipped -> pin_mailed
        |                           |                     \\-> failed (-> personalized)
        |                           |-> personalized (activation: the user system injected it)
        \\-> cancelled <--------------/
    card_assigned -> cancelled (only while on hold: the issuer HSM refused it)
    personalized, shipped, pin_mailed -> lost -> terminated
    sealed, sent_to_bureau, personalized, shipped, pin_mailed -> terminated

`cancelled` is final, and so is `failed` but for one way out: `personalized`, when a later
bureau result says the card holds its key after all (an earlier run lost the success), so that
the records never deny a card that works. The card of a failed or cancelled order is never used
for another order; the user gets a new order. A lost card's order waits for the card to turn up
(then the issuer-authenticated terminate is sent through the user's computer and it becomes
`terminated`, final). A lost or terminated card is replaced by a new order for the same user
with the same derivation element (same user key). `terminated` follows every state in which the
card may hold its blob: the card accepted the issuer-signed terminate, which proves it was
personalized. Every state change in the issuer system goes through `check_transition`.
"""

from __future__ import annotations

import enum

from sealcard.issuer.errors import InvalidTransitionError


class OrderState(enum.StrEnum):
    """Where an order is in its life cycle."""

    REQUESTED = "requested"
    CARD_ASSIGNED = "card_assigned"
    SEALED = "sealed"
    SENT_TO_BUREAU = "sent_to_bureau"
    PERSONALIZED = "personalized"
    FAILED = "failed"
    SHIPPED = "shipped"
    PIN_MAILED = "pin_mailed"
    LOST = "lost"
    TERMINATED = "terminated"
    CANCELLED = "cancelled"


#: Legal next states.
_S = OrderState
TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    # -> cancelled: an operator ends an order whose card was not personalized
    # (`Records.cancel_order`); a card_assigned one only while it is on hold (the issuer HSM
    # refused it: `Order.held`), never while a sealer works on it
    _S.REQUESTED: frozenset({_S.CARD_ASSIGNED, _S.CANCELLED}),
    _S.CARD_ASSIGNED: frozenset({_S.SEALED, _S.CANCELLED}),
    _S.SEALED: frozenset({_S.SENT_TO_BUREAU, _S.PERSONALIZED, _S.CANCELLED, _S.TERMINATED}),
    _S.SENT_TO_BUREAU: frozenset({_S.PERSONALIZED, _S.FAILED, _S.TERMINATED}),
    _S.PERSONALIZED: frozenset({_S.SHIPPED, _S.PIN_MAILED, _S.LOST, _S.TERMINATED}),
    _S.FAILED: frozenset({_S.PERSONALIZED}),  # repaired by a later bureau result
    _S.SHIPPED: frozenset({_S.PIN_MAILED, _S.LOST, _S.TERMINATED}),
    _S.PIN_MAILED: frozenset({_S.LOST, _S.TERMINATED}),
    _S.LOST: frozenset({_S.TERMINATED}),
    _S.TERMINATED: frozenset(),
    _S.CANCELLED: frozenset(),
}

#: States whose card may be reported lost (it was personalized or is on its way).
LOSABLE_STATES = frozenset(s for s, nxt in TRANSITIONS.items() if _S.LOST in nxt)
#: States after which a card can be replaced (same derivation element, new card).
REPLACEABLE_STATES = frozenset({_S.LOST, _S.TERMINATED})
#: States of an order whose card is in use or on its way (not yet lost, terminated, ended).
LIVE_STATES = frozenset(
    {
        _S.REQUESTED,
        _S.CARD_ASSIGNED,
        _S.SEALED,
        _S.SENT_TO_BUREAU,
        _S.PERSONALIZED,
        _S.SHIPPED,
        _S.PIN_MAILED,
    }
)

#: States after which nothing more happens to an order.
FINAL_STATES = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


def is_legal(current: OrderState, wanted: OrderState) -> bool:
    """Whether `wanted` may follow `current`."""
    return wanted in TRANSITIONS[current]


def check_transition(order_id: int, current: OrderState | str, wanted: OrderState | str) -> None:
    """Raise `InvalidTransitionError` unless `wanted` may follow `current`."""
    cur = OrderState(current)
    new = OrderState(wanted)
    if not is_legal(cur, new):
        raise InvalidTransitionError(order_id, cur.value, new.value)
