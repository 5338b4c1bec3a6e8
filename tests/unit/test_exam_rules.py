"""The exam's state machine, tested exhaustively against the path written in the issue."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telerad.workflow.exams.models import ExamState as S
from telerad.workflow.exams.rules import (
    ENTRY_STATES,
    TERMINAL_STATES,
    TRANSITIONS,
    URGENCY_RANK,
    InvalidTransition,
    check_move,
    claim_window,
    clocks,
)
from telerad.workflow.sites.models import DEFAULT_TARGETS, Urgency

# The specification, written independently of the table: the path, plus the moves
# the product needs (release, cancellation before reading, reconciliation).
SPEC = {
    (S.FILED, S.VALIDATED), (S.FILED, S.REFUSED), (S.VALIDATED, S.ACQUIRING),
    (S.ACQUIRING, S.READY), (S.READY, S.IN_READING), (S.IN_READING, S.PRELIMINARY),
    (S.PRELIMINARY, S.FINAL), (S.FINAL, S.DELIVERED),
    (S.IN_READING, S.READY),  # released
    (S.IN_READING, S.FINAL),  # signed without a preliminary
    (S.FILED, S.CANCELLED), (S.VALIDATED, S.CANCELLED), (S.ACQUIRING, S.CANCELLED),
    (S.READY, S.CANCELLED),
    (S.UNMATCHED, S.CANCELLED),  # rejected, or attached to its request
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_every_pair_of_states(current: S, target: S) -> None:
    if (current, target) in SPEC:
        check_move(current, target)
    else:
        with pytest.raises(InvalidTransition) as raised:
            check_move(current, target)
        assert raised.value.http_status == 409
        assert str(current) in raised.value.message


def test_table_names_every_state() -> None:
    assert set(TRANSITIONS) == set(S)


def test_terminal_states_are_the_ends() -> None:
    assert {S.REFUSED, S.DELIVERED, S.CANCELLED} == TERMINAL_STATES


def _reachable(start: S) -> set[S]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_every_state_is_reachable_from_an_entry_state() -> None:
    assert set().union(*(_reachable(s) for s in ENTRY_STATES)) == set(S)


def test_every_state_can_end() -> None:
    for state in S:
        assert _reachable(state) & TERMINAL_STATES, state


def test_nothing_is_read_before_it_is_validated_or_reconciled() -> None:
    # "Nothing is acquired on a request no radiologist validated" (PRODUCT.md).
    assert S.ACQUIRING not in _reachable(S.FILED) - _reachable(S.VALIDATED) - {S.FILED}
    assert S.READY not in _reachable(S.UNMATCHED)


@given(st.lists(st.sampled_from(list(S)), min_size=1, max_size=12))
def test_a_walk_moves_only_along_the_table(walk: list[S]) -> None:
    state = S.FILED
    for target in walk:
        try:
            check_move(state, target)
        except InvalidTransition:
            assert target not in TRANSITIONS[state]
        else:
            assert (state, target) in SPEC
            state = target


def test_urgencies_are_ranked_stroke_first() -> None:
    assert sorted(Urgency, key=URGENCY_RANK.__getitem__) == [
        Urgency.STROKE_ALERT, Urgency.LIFE_THREATENING, Urgency.URGENT, Urgency.SCHEDULED]


@given(st.integers(min_value=1, max_value=7 * 24 * 60))
def test_claim_window_is_bounded(minutes: int) -> None:
    window = claim_window(dt.timedelta(minutes=minutes))
    assert dt.timedelta(minutes=1) <= window <= dt.timedelta(hours=2)
    assert window <= max(dt.timedelta(minutes=minutes), dt.timedelta(minutes=1))


def test_claim_windows_of_the_default_targets() -> None:
    windows = {u: claim_window(dt.timedelta(minutes=m)) for u, m in DEFAULT_TARGETS.items()}
    assert windows == {Urgency.STROKE_ALERT: dt.timedelta(minutes=5),
                       Urgency.LIFE_THREATENING: dt.timedelta(minutes=10),
                       Urgency.URGENT: dt.timedelta(minutes=20),
                       Urgency.SCHEDULED: dt.timedelta(hours=2)}


def test_clocks_measure_each_step_against_the_contract() -> None:
    t0 = dt.datetime(2026, 11, 24, 21, 0, tzinfo=dt.UTC)
    minute = dt.timedelta(minutes=1)
    steps = clocks(filed_at=t0, decided_at=t0 + 3 * minute, first_image_at=t0 + 20 * minute,
                   ready_at=t0 + 30 * minute, claimed_at=t0 + 45 * minute, reported_at=None,
                   target=dt.timedelta(minutes=30), now=t0 + 70 * minute)
    assert [(c.step, c.minutes, c.late) for c in steps] == [
        ("filed", None, None), ("validated", 3.0, None), ("first_image", 17.0, None),
        ("ready", 10.0, None), ("claimed", 15.0, True),  # claim window: 10 min
        ("reported", None, True)]  # 40 min after ready, target 30: late already
    assert steps[-1].due_at == t0 + 60 * minute
    early = clocks(filed_at=t0, decided_at=None, first_image_at=None, ready_at=None,
                   claimed_at=None, reported_at=None, target=dt.timedelta(minutes=30),
                   now=t0)
    assert [c.late for c in early] == [None] * 6
