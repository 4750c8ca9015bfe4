"""The life cycle of an order: the one place that says which state may follow which.

    requested -> card_assigned -> sealed -> sent_to_bureau -> personalized -> shipped -> pin_mailed
                                                           \\-> failed (-> personalized)

The card and the derivation element of a failed order are never used again; the user gets a new
order (new card, new derivation element). The one way out of `failed` is `personalized`: a
later bureau result saying the card holds its key after all (an earlier run lost the success),
so that the records never deny a card that works. Every state change in the issuer system goes
through `check_transition`.
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


#: Legal next states.
TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    OrderState.REQUESTED: frozenset({OrderState.CARD_ASSIGNED}),
    OrderState.CARD_ASSIGNED: frozenset({OrderState.SEALED}),
    OrderState.SEALED: frozenset({OrderState.SENT_TO_BUREAU}),
    OrderState.SENT_TO_BUREAU: frozenset({OrderState.PERSONALIZED, OrderState.FAILED}),
    OrderState.PERSONALIZED: frozenset({OrderState.SHIPPED}),
    OrderState.FAILED: frozenset({OrderState.PERSONALIZED}),  # repaired by a later result
    OrderState.SHIPPED: frozenset({OrderState.PIN_MAILED}),
    OrderState.PIN_MAILED: frozenset(),
}

#: States after which nothing more happens to an order.
FINAL_STATES = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
#: States whose card and derivation element are never used for another order.
SPENT_STATES = FINAL_STATES | {OrderState.FAILED}


def is_legal(current: OrderState, wanted: OrderState) -> bool:
    """Whether `wanted` may follow `current`."""
    return wanted in TRANSITIONS[current]


def check_transition(order_id: int, current: OrderState | str, wanted: OrderState | str) -> None:
    """Raise `InvalidTransitionError` unless `wanted` may follow `current`."""
    cur = OrderState(current)
    new = OrderState(wanted)
    if not is_legal(cur, new):
        raise InvalidTransitionError(order_id, cur.value, new.value)
