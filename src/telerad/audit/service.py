"""Recording and verifying the audit trail (append-only, hash-chained).

Each event's hash is SHA-256 over the previous hash and the event's canonical JSON. Appends
are serialised — SQLite's write lock, a transaction-level advisory lock on PostgreSQL — so
the chain never forks. Events are written in the same transaction as the access they
record: a rolled-back change leaves no event, a committed one always has its event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from telerad.audit.models import AuditEvent
from telerad.auth.service import Actor

GENESIS = "0" * 64
# Any constant; names the lock that serialises appends on PostgreSQL.
_ADVISORY_LOCK = 0x7E1E7AD


class Action(StrEnum):
    """What was done with patient data."""

    STORE = "store"
    """Instances received (C-STORE, STOW-RS, import)."""
    SEARCH = "search"
    """A query over studies, series or instances (QIDO-RS, API list)."""
    READ_METADATA = "read_metadata"
    """Attributes of a study read (WADO-RS metadata, API)."""
    RETRIEVE = "retrieve"
    """Instances, frames, bulk data or renderings retrieved (WADO-RS)."""
    READ = "read"
    """A request or exam read (its patient, clinical context, timeline)."""
    CREATE = "create"
    """A request filed (or an exam opened for unmatched images)."""
    UPDATE = "update"
    """A request or exam changed: decision, claim, release, reconciliation, cancellation."""


@dataclass(frozen=True, kw_only=True)
class Who:
    """The actor as the audit trail names it."""

    kind: str
    id: str
    source: str = ""


def who_for(actor: Actor, source: str) -> Who:
    """How the trail names an authenticated actor calling from ``source``."""
    return Who(kind=actor.kind, id=f"{actor.id}:{actor.name}", source=source)


def _digest(previous: str, fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((previous + canonical).encode()).hexdigest()


def _fields(event: AuditEvent) -> dict[str, Any]:
    return {
        "occurred_at": event.occurred_at.astimezone(dt.UTC).isoformat(),
        "actor_kind": event.actor_kind,
        "actor_id": event.actor_id,
        "action": event.action,
        "study_instance_uid": event.study_instance_uid,
        "source": event.source,
        "outcome": event.outcome,
        "detail": event.detail,
    }


def record(
    session: Session, *, who: Who, action: Action, now: dt.datetime,
    study_instance_uid: str = "", outcome: str = "success", detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
    previous = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    event = AuditEvent(
        occurred_at=now.astimezone(dt.UTC),
        actor_kind=who.kind,
        actor_id=who.id[:64],
        action=str(action),
        study_instance_uid=study_instance_uid,
        source=who.source[:64],
        outcome=outcome,
        detail=json.dumps(detail or {}, sort_keys=True, separators=(",", ":")),
        previous_hash=previous or GENESIS,
        hash="",
    )
    event.hash = _digest(event.previous_hash, _fields(event))
    session.add(event)
    session.flush()
    return event


class RecentReads:
    """Remembers which (actor, action, study) reads were recorded lately, so that a viewer
    fetching a study's 1,500 frames leaves one RETRIEVE event per minute, not 1,500.

    Searches and writes are always recorded; only repeated reads of the same study by the
    same actor from the same place within ``window`` are folded into the first one.
    """

    FOLDED = frozenset({Action.RETRIEVE, Action.READ_METADATA})

    def __init__(self, window: dt.timedelta = dt.timedelta(seconds=60)) -> None:
        self.window = window
        self._seen: dict[tuple[str, str, str, str, str], dt.datetime] = {}
        self._lock = threading.Lock()

    def should_record(self, who: Who, action: Action, study_instance_uid: str,
                      now: dt.datetime) -> bool:
        if action not in self.FOLDED or not study_instance_uid:
            return True
        key = (who.kind, who.id, who.source, str(action), study_instance_uid)
        with self._lock:
            last = self._seen.get(key)
            if last is not None and now - last < self.window:
                return False
            if len(self._seen) > 10_000:  # forget old entries; at worst an extra event
                self._seen = {k: v for k, v in self._seen.items() if now - v < self.window}
            self._seen[key] = now
            return True


@dataclass(frozen=True)
class Break:
    """Where the chain does not hold."""

    event_id: int
    reason: str


def verify(session: Session, *, batch: int = 5000) -> Iterator[Break]:
    """Every place where the stored trail differs from what its hashes say."""
    expected_previous = GENESIS
    last_id = 0
    while True:
        events = list(session.scalars(
            select(AuditEvent).where(AuditEvent.id > last_id).order_by(AuditEvent.id).limit(batch)
        ))
        if not events:
            return
        for event in events:
            if event.previous_hash != expected_previous:
                yield Break(event.id, "previous hash does not match: a row was removed or inserted")
            if _digest(event.previous_hash, _fields(event)) != event.hash:
                yield Break(event.id, "content does not match its hash: the row was edited")
            expected_previous = event.hash
            last_id = event.id


def count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)
