"""The order life cycle: which state may follow which, checked in one place."""

from __future__ import annotations

import itertools

import pytest

from sealcard.issuer.errors import InvalidTransitionError
from sealcard.issuer.lifecycle import (
    FINAL_STATES,
    LOSABLE_STATES,
    REPLACEABLE_STATES,
    TRANSITIONS,
    OrderState,
    check_transition,
    is_legal,
)
from sealcard.issuer.records import Order

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
    side_roads = {
        (OrderState.SENT_TO_BUREAU, OrderState.FAILED),
        (OrderState.FAILED, OrderState.PERSONALIZED),  # a later bureau result: the card works
        (OrderState.SEALED, OrderState.PERSONALIZED),  # activation on the user's computer
        (OrderState.PERSONALIZED, OrderState.PIN_MAILED),  # activation: no shipping
        (OrderState.REQUESTED, OrderState.CANCELLED),
        (OrderState.CARD_ASSIGNED, OrderState.CANCELLED),  # only while on hold (Order.held)
        (OrderState.SEALED, OrderState.CANCELLED),
        *((s, OrderState.LOST) for s in LOSABLE_STATES),
        *((s, OrderState.TERMINATED) for s in TERMINABLE),
    }
    happy = set(itertools.pairwise(HAPPY_PATH))
    assert legal == happy | side_roads


LOST_OR_ON_ITS_WAY = [OrderState.PERSONALIZED, OrderState.SHIPPED, OrderState.PIN_MAILED]
TERMINABLE = [
    OrderState.SEALED,
    OrderState.SENT_TO_BUREAU,
    *LOST_OR_ON_ITS_WAY,
    OrderState.LOST,
]


def test_lost_and_terminated_cards_are_recorded() -> None:
    assert set(LOST_OR_ON_ITS_WAY) == LOSABLE_STATES
    for state in LOST_OR_ON_ITS_WAY:
        check_transition(1, state, OrderState.LOST)
    check_transition(1, OrderState.LOST, OrderState.TERMINATED)
    assert not is_legal(OrderState.LOST, OrderState.PERSONALIZED)  # a lost card stays lost
    assert OrderState.TERMINATED in FINAL_STATES
    assert OrderState.CANCELLED in FINAL_STATES
    assert OrderState.LOST not in FINAL_STATES  # it may turn up and be terminated
    assert {OrderState.LOST, OrderState.TERMINATED} == REPLACEABLE_STATES


@pytest.mark.parametrize(
    "state", [OrderState.REQUESTED, OrderState.CARD_ASSIGNED, OrderState.FAILED]
)
def test_cards_never_personalized_cannot_be_lost_or_terminated(state: OrderState) -> None:
    for wanted in (OrderState.LOST, OrderState.TERMINATED):
        with pytest.raises(InvalidTransitionError):
            check_transition(1, state, wanted)


def _order(state: OrderState, failure_reason: str | None = None) -> Order:
    return Order(1, 1, state, "none", None, None, None, "t", "t", failure_reason=failure_reason)


def test_a_card_being_sealed_cannot_be_cancelled_a_held_one_can() -> None:
    assert not _order(OrderState.CARD_ASSIGNED).cancellable  # a sealer works on it
    assert _order(OrderState.CARD_ASSIGNED, "unknown-mailer: post").cancellable  # on hold
    assert _order(OrderState.REQUESTED).cancellable and _order(OrderState.SEALED).cancellable
    for state in (OrderState.SENT_TO_BUREAU, OrderState.PERSONALIZED, OrderState.CANCELLED):
        assert not _order(state).cancellable
    with pytest.raises(InvalidTransitionError):  # an operator's cancel never ends as failed
        check_transition(1, OrderState.REQUESTED, OrderState.FAILED)
