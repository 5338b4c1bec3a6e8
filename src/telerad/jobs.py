"""Durable jobs and events: rows written in the caller's transaction (a true outbox).

A job is a row naming a registered handler, a JSON payload and the instant it is due.
``publish`` turns an event into one job per subscriber, in the same transaction as the
change that caused it, so that a subscriber never misses an event and never sees one that
was rolled back. Workers claim due jobs with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL; on
SQLite the single writer lock serialises claims.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Index, String, Text, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from telerad.clock import Clock
from telerad.db import Base, transaction

LOGGER = logging.getLogger(__name__)

#: Longest pause between two attempts of a failing job.
MAX_BACKOFF = dt.timedelta(minutes=10)
#: How long a claimed job stays reserved for its worker before another may take it (a
#: worker that died holds its jobs this long at most; handlers are idempotent).
LEASE = dt.timedelta(seconds=60)


class Job(Base):
    """A unit of background work, due at ``run_at``; done when ``done_at`` is set."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_due", "done_at", "run_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(100))
    payload: Mapped[str] = mapped_column(Text, default="{}")
    run_at: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime]
    attempts: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[dt.datetime | None]
    done_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


@dataclass(frozen=True, kw_only=True)
class JobContext:
    """What a handler receives besides its payload: the session of its transaction."""

    session: Session
    clock: Clock
    job_id: int


Handler = Callable[[JobContext, dict[str, Any]], None]

_HANDLERS: dict[str, Handler] = {}
_SUBSCRIBERS: dict[str, list[str]] = {}


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register ``fn`` as the handler of jobs of ``kind`` (one handler per kind)."""

    def register(fn: Handler) -> Handler:
        if kind in _HANDLERS and _HANDLERS[kind] is not fn:
            raise ValueError(f"job kind {kind!r} already has a handler")
        _HANDLERS[kind] = fn
        return fn

    return register


def subscribe(event: str, kind: str) -> None:
    """Run the job ``kind`` (with the event's payload) each time ``event`` is published."""
    kinds = _SUBSCRIBERS.setdefault(event, [])
    if kind not in kinds:
        kinds.append(kind)


def enqueue(
    session: Session,
    *,
    kind: str,
    payload: dict[str, Any],
    now: dt.datetime,
    run_at: dt.datetime | None = None,
) -> Job:
    """Add a job in the caller's transaction."""
    job = Job(kind=kind, payload=json.dumps(payload), run_at=run_at or now, created_at=now)
    session.add(job)
    return job


def publish(session: Session, *, event: str, payload: dict[str, Any], now: dt.datetime) -> int:
    """Publish ``event``: one job per subscriber, in the caller's transaction."""
    kinds = _SUBSCRIBERS.get(event, [])
    for kind in kinds:
        enqueue(session, kind=kind, payload=payload, now=now)
    return len(kinds)


def _claim(session: Session, now: dt.datetime, limit: int) -> list[Job]:
    query = (
        select(Job)
        .where(Job.done_at.is_(None), Job.run_at <= now)
        .where((Job.locked_until.is_(None)) | (Job.locked_until < now))
        .order_by(Job.run_at, Job.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    jobs = list(session.scalars(query))
    for job in jobs:
        job.locked_until = now + LEASE
    return jobs


def run_due(sessions: sessionmaker[Session], clock: Clock, *, limit: int = 10) -> int:
    """Run the jobs due now, each in its own transaction; return how many ran."""
    with transaction(sessions) as session:
        ids = [job.id for job in _claim(session, clock.now(), limit)]
    for job_id in ids:
        _run_one(sessions, clock, job_id)
    return len(ids)


def _run_one(sessions: sessionmaker[Session], clock: Clock, job_id: int) -> None:
    try:
        with transaction(sessions) as session:
            job = session.get(Job, job_id)
            if job is None or job.done_at is not None:
                return
            fn = _HANDLERS.get(job.kind)
            if fn is None:
                raise LookupError(f"no handler for job kind {job.kind!r}")
            fn(JobContext(session=session, clock=clock, job_id=job.id), json.loads(job.payload))
            job.done_at = clock.now()
            job.attempts += 1
    except Exception as exc:
        LOGGER.warning("job %s failed: %s", job_id, type(exc).__name__)
        now = clock.now()
        with transaction(sessions) as session:
            attempts = (session.get(Job, job_id) or Job(attempts=0)).attempts + 1
            delay = min(dt.timedelta(seconds=2**attempts), MAX_BACKOFF)
            session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(
                    attempts=attempts,
                    run_at=now + delay,
                    locked_until=None,
                    last_error="".join(traceback.format_exception_only(exc))[:2000],
                )
            )


class Worker:
    """A background thread that runs due jobs until stopped."""

    def __init__(
        self, sessions: sessionmaker[Session], clock: Clock, *, poll_interval: float = 0.5
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._poll_interval = poll_interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="telerad-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ran = run_due(self._sessions, self._clock)
            except Exception:
                LOGGER.exception("worker loop failed; retrying")
                ran = 0
            if ran == 0:
                self._stop.wait(self._poll_interval)
