"""Durable jobs: published events reach every subscriber; failures retry with backoff."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from telerad import jobs
from telerad.clock import FrozenClock
from telerad.db import transaction
from telerad.runtime import Runtime

SEEN: list[tuple[str, Any]] = []
FAILURES = {"left": 2}


@jobs.handler("test.jobs.record")
def _record(_ctx: jobs.JobContext, payload: dict[str, Any]) -> None:
    SEEN.append(("record", payload["n"]))


@jobs.handler("test.jobs.flaky")
def _flaky(_ctx: jobs.JobContext, payload: dict[str, Any]) -> None:
    if FAILURES["left"] > 0:
        FAILURES["left"] -= 1
        raise RuntimeError("peer down")
    SEEN.append(("flaky", payload["n"]))


def test_publish_reaches_subscribers_and_failures_back_off(runtime: Runtime) -> None:
    SEEN.clear()
    clock = FrozenClock(dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC))
    jobs.subscribe("test.jobs.event", "test.jobs.record")
    jobs.subscribe("test.jobs.event", "test.jobs.flaky")
    with transaction(runtime.sessions) as session:
        assert jobs.publish(session, event="test.jobs.event", payload={"n": 7},
                            now=clock.now()) == 2
    # A rolled-back publication leaves no job behind.
    try:
        with transaction(runtime.sessions) as session:
            jobs.publish(session, event="test.jobs.event", payload={"n": 8}, now=clock.now())
            raise RuntimeError("rollback")
    except RuntimeError:
        pass
    assert jobs.run_due(runtime.sessions, clock) == 2
    assert SEEN == [("record", 7)]
    assert jobs.run_due(runtime.sessions, clock) == 0  # backing off: not due yet
    clock.advance(dt.timedelta(seconds=2))
    assert jobs.run_due(runtime.sessions, clock) == 1  # second failure
    clock.advance(dt.timedelta(seconds=3))
    assert jobs.run_due(runtime.sessions, clock) == 0  # now 4 s of backoff
    clock.advance(dt.timedelta(seconds=2))
    assert jobs.run_due(runtime.sessions, clock) == 1
    assert SEEN == [("record", 7), ("flaky", 7)]
    with transaction(runtime.sessions, readonly=True) as session:
        flaky = session.scalars(select(jobs.Job).where(jobs.Job.kind == "test.jobs.flaky")).one()
        assert flaky.done_at is not None
        assert flaky.attempts == 3
        assert "peer down" in (flaky.last_error or "")
