"""The outbox: deliveries planned with the signature, claimed in order, settled by the peer.

- :func:`plan` adds the rows in the caller's transaction (the one that signs the version),
  so a signed report always has its deliveries and a rolled-back one never does.
- :func:`claim` leases the due rows a worker may send now. Within one exam and one endpoint
  the rows go strictly in sequence (preliminary, final, addenda): a row is claimable only
  when every pending row before it is claimed with it.
- :func:`settle` records the peer's answers: an acknowledged row is never sent again; a row
  worth retrying waits, the pause doubling up to a cap, and so does every row for the same
  endpoint that was not tried (the peer is down for them too); a rejected row is flagged
  failed and does not hold the rows after it (a final supersedes a refused preliminary).

A worker that dies while sending leaves its rows leased; when the lease ends they are sent
again with the same MSH-10 or SOP Instance UID, which a peer takes as the same message.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from telerad.delivery.channels import Outcome, Verdict
from telerad.delivery.models import Delivery, DeliveryState, Endpoint
from telerad.workflow.exams.models import Exam, ExamState
from telerad.workflow.exams.timeline import move, record_event

#: How long a claimed row is reserved for the worker that claimed it.
LEASE = dt.timedelta(seconds=60)


@dataclass(frozen=True, kw_only=True)
class Document:
    """One thing to deliver to one endpoint."""

    endpoint_id: int
    document: str
    payload: bytes
    idempotency_key: str


def endpoints(session: Session, site_id: int) -> list[Endpoint]:
    """The site's enabled endpoints."""
    return list(session.scalars(select(Endpoint).where(
        Endpoint.site_id == site_id, Endpoint.enabled.is_(True)).order_by(Endpoint.id)))


def plan(session: Session, *, exam_id: int, report_version_id: int,
         documents: Sequence[Document], now: dt.datetime) -> list[Delivery]:
    """Add the deliveries of one version, after every earlier one of the same exam."""
    last = dict(session.execute(
        select(Delivery.endpoint_id, func.max(Delivery.sequence))
        .where(Delivery.exam_id == exam_id).group_by(Delivery.endpoint_id)).all())
    rows = []
    for doc in documents:
        last[doc.endpoint_id] = last.get(doc.endpoint_id, 0) + 1
        rows.append(Delivery(
            exam_id=exam_id, endpoint_id=doc.endpoint_id, report_version_id=report_version_id,
            sequence=last[doc.endpoint_id], document=doc.document, payload=doc.payload,
            idempotency_key=doc.idempotency_key, state=DeliveryState.PENDING,
            next_attempt_at=now, created_at=now))
    session.add_all(rows)
    return rows


def claim(session: Session, *, now: dt.datetime, limit: int = 200) -> list[Delivery]:
    """Lease up to ``limit`` due rows, each the head of its exam's line at its endpoint (or
    following, in sequence, rows claimed with it); ordered by endpoint, exam, sequence."""
    query = (select(Delivery)
             .where(Delivery.state == DeliveryState.PENDING, Delivery.next_attempt_at <= now)
             .where(Delivery.leased_until.is_(None) | (Delivery.leased_until < now))
             .order_by(Delivery.next_attempt_at, Delivery.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    due = list(session.scalars(query))
    if not due:
        return []
    lines: dict[tuple[int, int], list[int]] = defaultdict(list)
    exam_ids = {row.exam_id for row in due}
    for endpoint_id, exam_id, sequence in session.execute(
            select(Delivery.endpoint_id, Delivery.exam_id, Delivery.sequence)
            .where(Delivery.state == DeliveryState.PENDING, Delivery.exam_id.in_(exam_ids))):
        lines[(endpoint_id, exam_id)].append(sequence)
    taken: dict[tuple[int, int], set[int]] = defaultdict(set)
    for row in due:
        taken[(row.endpoint_id, row.exam_id)].add(row.sequence)
    claimed = []
    for row in due:
        key = (row.endpoint_id, row.exam_id)
        if all(s in taken[key] for s in lines[key] if s < row.sequence):
            row.leased_until = now + LEASE
            claimed.append(row)
    claimed.sort(key=lambda r: (r.endpoint_id, r.exam_id, r.sequence))
    return claimed


def backoff(attempts: int, *, cap: dt.timedelta) -> dt.timedelta:
    """The pause after the ``attempts``-th failed attempt: 1 s, 2 s, 4 s ... at most ``cap``."""
    return min(dt.timedelta(seconds=2 ** min(max(attempts - 1, 0), 30)), cap)


def settle(session: Session, *, claimed: Sequence[Delivery], outcomes: Iterable[Outcome],
           now: dt.datetime, max_backoff: dt.timedelta) -> None:
    """Record the answers to the claimed rows (the rows without an answer were not tried)."""
    by_id = {row.id: row for row in claimed}
    answered: set[int] = set()
    retry_at: dict[int, dt.datetime] = {}
    delivered_exams: set[int] = set()
    for outcome in outcomes:
        row = by_id[outcome.delivery_id]
        answered.add(row.id)
        row.attempts += 1
        row.leased_until = None
        row.last_answer = outcome.answer[:500]
        if outcome.verdict is Verdict.ACKNOWLEDGED:
            row.state = DeliveryState.ACKNOWLEDGED
            row.acknowledged_at = now
            delivered_exams.add(row.exam_id)
        elif outcome.verdict is Verdict.REJECTED:
            row.state = DeliveryState.FAILED
            row.failed_at = now
            _flag(session, row, now=now)
        else:
            row.next_attempt_at = now + backoff(row.attempts, cap=max_backoff)
            retry_at[row.endpoint_id] = max(retry_at.get(row.endpoint_id, now),
                                            row.next_attempt_at)
    for row in claimed:
        if row.id not in answered:
            row.leased_until = None
            row.next_attempt_at = retry_at.get(row.endpoint_id, now)
    if retry_at:
        # The peer is down for the rows not claimed this round too: they wait with it.
        session.flush()
        session.execute(update(Delivery).where(
            Delivery.state == DeliveryState.PENDING, Delivery.endpoint_id.in_(retry_at),
            Delivery.next_attempt_at <= now, Delivery.leased_until.is_(None),
        ).values(next_attempt_at=min(retry_at.values())).execution_options(
            synchronize_session=False))
    session.flush()
    for exam_id in delivered_exams:
        _mark_delivered(session, exam_id, now=now)


def _flag(session: Session, row: Delivery, *, now: dt.datetime) -> None:
    exam = session.get(Exam, row.exam_id)
    if exam is not None:
        record_event(session, exam, kind="delivery_failed", actor="system", now=now,
                     delivery_id=row.id, endpoint_id=row.endpoint_id, document=row.document,
                     answer=row.last_answer)


def _mark_delivered(session: Session, exam_id: int, *, now: dt.datetime) -> None:
    """A final exam becomes delivered once nothing of it is left pending."""
    exam = session.get(Exam, exam_id)
    if exam is None or exam.state != ExamState.FINAL:
        return
    left = session.scalar(select(func.count()).select_from(Delivery).where(
        Delivery.exam_id == exam_id, Delivery.state != DeliveryState.ACKNOWLEDGED))
    if not left:
        move(session, exam, ExamState.DELIVERED, actor="system", now=now)


def mark_delivered_if_done(session: Session, exam: Exam, *, now: dt.datetime) -> None:
    """For a version with nothing to send (a site without endpoints: the portal only)."""
    _mark_delivered(session, exam.id, now=now)
