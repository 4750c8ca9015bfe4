"""The order life cycle: which state may follow which, checked in one place."""

from __future__ import annotations

import itertools

import pytest

from sealcard.issuer.errors import InvalidTransitionError
from sealcard.issuer.lifecycle import (
    FINAL_STATES,
    SPENT_STATES,
    TRANSITIONS,
    OrderState,
    check_transition,
    is_legal,
)

HAPPY_PATH = [
    OrderState.REQUESTED,
    OrderState.CARD_ASSIGNED,
    OrderState.SEALED,
    OrderState.SENT_TO_BUREAU,
    OrderState.PERSONALIZED,
    OrderState.SHIPPED,
    OrderState.PIN_MAILED,
]


def test_happy_path_is_legal_step_by_step() -> None:
    for current, wanted in itertools.pairwise(HAPPY_PATH):
        check_transition(1, current, wanted)


def test_bureau_failure_is_legal_and_only_a_later_success_repairs_it() -> None:
    check_transition(1, OrderState.SENT_TO_BUREAU, OrderState.FAILED)
    assert OrderState.FAILED in SPENT_STATES
    assert OrderState.FAILED not in FINAL_STATES
    for wanted in OrderState:
        assert is_legal(OrderState.FAILED, wanted) == (wanted is OrderState.PERSONALIZED)


def test_every_state_has_an_entry() -> None:
    assert set(TRANSITIONS) == set(OrderState)


@pytest.mark.parametrize(
    ("current", "wanted"),
    [
        (OrderState.REQUESTED, OrderState.SEALED),  # skipping card assignment
        (OrderState.SEALED, OrderState.CARD_ASSIGNED),  # backwards
        (OrderState.SEALED, OrderState.SEALED),  # sealing twice
        (OrderState.PERSONALIZED, OrderState.FAILED),
        (OrderState.PIN_MAILED, OrderState.REQUESTED),
        (OrderState.CARD_ASSIGNED, OrderState.REQUESTED),  # a card is never handed back
    ],
)
def test_illegal_transitions_are_refused(current: OrderState, wanted: OrderState) -> None:
    with pytest.raises(InvalidTransitionError) as info:
        check_transition(7, current, wanted)
    assert info.value.order_id == 7
    assert info.value.current == current.value
    assert info.value.wanted == wanted.value


def test_only_listed_transitions_are_legal() -> None:
    legal = {(a, b) for a, nxt in TRANSITIONS.items() for b in nxt}
    for a, b in itertools.product(OrderState, OrderState):
        assert is_legal(a, b) == ((a, b) in legal)
    # the happy path, sent_to_bureau -> failed, and failed -> personalized (a later success)
    assert len(legal) == len(HAPPY_PATH) - 1 + 2
