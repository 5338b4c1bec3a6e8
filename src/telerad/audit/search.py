"""Searching the audit trail (an administrator's question: who touched this patient's data,
what did this account do last night) and reporting whether its chain holds.

The trail names patients only by StudyInstanceUID and exam ids (in ``detail``); the caller
turns a patient ID or accession number into those first (this layer knows no exams).
Results come newest first, a page at a time. Searching is a read like any other: the edge
records it in the trail.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, false, func, or_, select
from sqlalchemy.orm import Session

from telerad.audit.models import AuditEvent
from telerad.audit.service import Break, count, verify

PER_PAGE = 50
#: The chain check stops listing after this many breaks (one is already an alarm).
MAX_BREAKS = 20


@dataclass(frozen=True, kw_only=True)
class AuditQuery:
    """What to look for; an empty field filters nothing."""

    #: Part of the actor's name as recorded ("12:dr_alice", an AE title, "worker").
    actor: str = ""
    action: str = ""
    #: Events about these studies or exams; None: any (an empty set matches nothing).
    study_instance_uids: frozenset[str] | None = None
    exam_ids: frozenset[int] = field(default_factory=frozenset)
    #: From (inclusive) and until (exclusive), instants.
    since: dt.datetime | None = None
    until: dt.datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Results:
    events: list[AuditEvent]
    total: int
    page: int
    pages: int


def _exam_patterns(exam_id: int) -> list[str]:
    """``detail`` is canonical JSON (sorted keys, no spaces: ``audit.service.record``), so
    an exam appears as ``"exam_id":7`` or inside ``"exam_ids":[...]``."""
    return [f'%"exam_id":{exam_id},%', f'%"exam_id":{exam_id}}}%',
            f'%"exam_ids":[{exam_id},%', f'%"exam_ids":[{exam_id}]%',
            f'%"exam_ids":[%,{exam_id},%', f'%"exam_ids":[%,{exam_id}]%']


def _conditions(query: AuditQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if query.actor.strip():
        conditions.append(func.lower(AuditEvent.actor_id).contains(
            query.actor.strip().lower(), autoescape=True))
    if query.action:
        conditions.append(AuditEvent.action == query.action)
    if query.since is not None:
        conditions.append(AuditEvent.occurred_at >= query.since)
    if query.until is not None:
        conditions.append(AuditEvent.occurred_at < query.until)
    if query.study_instance_uids is not None:
        about: list[ColumnElement[bool]] = [false()]
        if query.study_instance_uids:
            about.append(AuditEvent.study_instance_uid.in_(sorted(query.study_instance_uids)))
        about += [AuditEvent.detail.like(p) for e in sorted(query.exam_ids)
                  for p in _exam_patterns(e)]
        conditions.append(or_(*about))
    return conditions


def search(session: Session, query: AuditQuery, *, page: int = 1,
           per_page: int = PER_PAGE) -> Results:
    """The events matching ``query``, newest first, page ``page`` (from 1)."""
    conditions = _conditions(query)
    total = int(session.scalar(select(func.count()).select_from(AuditEvent)
                               .where(*conditions)) or 0)
    pages = max(1, -(-total // per_page))
    page = min(max(page, 1), pages)
    events = list(session.scalars(select(AuditEvent).where(*conditions)
                                  .order_by(AuditEvent.id.desc())
                                  .offset((page - 1) * per_page).limit(per_page)))
    return Results(events=events, total=total, page=page, pages=pages)


@dataclass(frozen=True, kw_only=True)
class ChainStatus:
    """The whole trail checked link by link."""

    events: int
    breaks: list[Break]

    @property
    def intact(self) -> bool:
        return not self.breaks


def chain_status(session: Session) -> ChainStatus:
    breaks: list[Break] = []
    for found in verify(session):
        breaks.append(found)
        if len(breaks) >= MAX_BREAKS:
            break
    return ChainStatus(events=count(session), breaks=breaks)
