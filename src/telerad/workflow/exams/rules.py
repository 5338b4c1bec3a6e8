"""The exam's state machine as a table (pure), and the clocks it is measured by.

    filed -> validated -> acquiring -> ready -> in_reading -> preliminary -> final -> delivered
    filed -> refused;  in_reading -> ready (released);  in_reading -> final
    filed | validated | acquiring | ready -> cancelled
    unmatched -> cancelled (rejected, or attached to the request it belongs to)

Every change goes through :func:`check_move`; the table is tested exhaustively.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from telerad.errors import Conflict
from telerad.workflow.exams.models import ExamState as S
from telerad.workflow.sites.models import Urgency

#: The allowed moves. A state absent from the values' union is only an entry state.
TRANSITIONS: dict[S, frozenset[S]] = {
    S.FILED: frozenset({S.VALIDATED, S.REFUSED, S.CANCELLED}),
    S.VALIDATED: frozenset({S.ACQUIRING, S.CANCELLED}),
    S.REFUSED: frozenset(),
    S.ACQUIRING: frozenset({S.READY, S.CANCELLED}),
    S.READY: frozenset({S.IN_READING, S.CANCELLED}),
    S.IN_READING: frozenset({S.READY, S.PRELIMINARY, S.FINAL}),
    S.PRELIMINARY: frozenset({S.FINAL}),
    S.FINAL: frozenset({S.DELIVERED}),
    S.DELIVERED: frozenset(),
    S.CANCELLED: frozenset(),
    S.UNMATCHED: frozenset({S.CANCELLED}),
}

#: States an exam is created in.
ENTRY_STATES = frozenset({S.FILED, S.UNMATCHED})
#: States nothing leaves.
TERMINAL_STATES = frozenset(s for s, targets in TRANSITIONS.items() if not targets)


class InvalidTransition(Conflict):
    """The exam is not in a state that allows this (it moved meanwhile, or never could)."""

    code = "invalid_transition"


def check_move(current: S, target: S) -> None:
    """InvalidTransition unless the table allows ``current`` → ``target``."""
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(f"an exam in state {current} cannot become {target}")


#: Urgency order on the worklist (lower first).
URGENCY_RANK = {Urgency.STROKE_ALERT: 0, Urgency.LIFE_THREATENING: 1, Urgency.URGENT: 2,
                Urgency.SCHEDULED: 3}
#: An unmatched exam has no urgency: it sorts after every matched one.
NO_URGENCY_RANK = 9


def claim_window(target: dt.timedelta) -> dt.timedelta:
    """How long a ready exam waits for a claim before each escalation step: a third of its
    turnaround target (stroke alert 15 min → 5 min), at least one minute, at most two hours
    (a scheduled exam's 24 h target must not leave it unseen overnight)."""
    return min(max(target / 3, dt.timedelta(minutes=1)), dt.timedelta(hours=2))


@dataclass(frozen=True, kw_only=True)
class StepClock:
    """One step of an exam measured: when it happened, how long after the step before,
    and against its deadline where the contract sets one."""

    step: str
    at: dt.datetime | None
    minutes: float | None
    due_at: dt.datetime | None = None
    #: Past its deadline (done late, or not done and the deadline passed); None: no deadline.
    late: bool | None = None


def clocks(
    *, filed_at: dt.datetime | None, decided_at: dt.datetime | None,
    first_image_at: dt.datetime | None, ready_at: dt.datetime | None,
    claimed_at: dt.datetime | None, reported_at: dt.datetime | None,
    target: dt.timedelta, now: dt.datetime,
) -> list[StepClock]:
    """The exam's clocks: request validated, first image, complete, claimed (within the
    first claim window), reported (within the turnaround target, from complete)."""
    claim_due = None if ready_at is None else ready_at + claim_window(target)
    report_due = None if ready_at is None else ready_at + target
    steps = [("filed", filed_at, None), ("validated", decided_at, None),
             ("first_image", first_image_at, None), ("ready", ready_at, None),
             ("claimed", claimed_at, claim_due), ("reported", reported_at, report_due)]
    result: list[StepClock] = []
    previous: dt.datetime | None = None
    for step, at, due in steps:
        minutes = None if at is None or previous is None else (
            (at - previous).total_seconds() / 60)
        late = None if due is None else (at or now) > due
        result.append(StepClock(step=step, at=at, minutes=minutes, due_at=due, late=late))
        previous = at or previous
    return result
