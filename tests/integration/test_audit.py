"""The audit trail records accesses and detects any edit of itself."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading

from sqlalchemy import select, text

from telerad.audit.models import AuditEvent
from telerad.audit.service import Action, Who, count, record, verify
from telerad.config import Settings
from telerad.db import transaction
from telerad.runtime import Runtime

NOW = dt.datetime(2026, 11, 23, 23, 0, tzinfo=dt.UTC)


def _fill(runtime: Runtime, n: int) -> None:
    with transaction(runtime.sessions) as session:
        for i in range(n):
            record(session, who=Who(kind="service", id=f"1:reader{i}", source="127.0.0.1"),
                   action=Action.RETRIEVE, now=NOW + dt.timedelta(seconds=i),
                   study_instance_uid=f"1.2.3.{i}", detail={"frames": [1, 2]})


def _verify_cli(settings: Settings) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "telerad", "audit", "verify", "--data-dir", str(settings.data_dir)],
        capture_output=True, text=True,
        env={**os.environ, "TELERAD_DATABASE_URL": settings.database_url}, check=False,
    )


def test_intact_chain_verifies(runtime: Runtime, settings: Settings) -> None:
    _fill(runtime, 5)
    with transaction(runtime.sessions, readonly=True) as session:
        assert count(session) == 5
        assert list(verify(session)) == []
    result = _verify_cli(settings)
    assert result.returncode == 0, result.stderr
    assert "intact: 5 events" in result.stdout


def test_an_edited_row_is_detected(runtime: Runtime, settings: Settings) -> None:
    _fill(runtime, 5)
    with transaction(runtime.sessions) as session:
        session.execute(text("UPDATE audit_events SET actor_id = 'someone else' WHERE id = 3"))
    with transaction(runtime.sessions, readonly=True) as session:
        breaks = list(verify(session))
    assert [b.event_id for b in breaks] == [3]
    result = _verify_cli(settings)
    assert result.returncode == 1
    assert "event #3" in result.stdout


def test_a_removed_row_is_detected(runtime: Runtime) -> None:
    _fill(runtime, 5)
    with transaction(runtime.sessions) as session:
        session.execute(text("DELETE FROM audit_events WHERE id = 2"))
    with transaction(runtime.sessions, readonly=True) as session:
        assert [b.event_id for b in verify(session)] == [3]


def test_concurrent_appends_keep_one_chain(runtime: Runtime) -> None:
    threads = [threading.Thread(target=_fill, args=(runtime, 10)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with transaction(runtime.sessions, readonly=True) as session:
        assert count(session) == 40
        assert list(verify(session)) == []
        hashes = session.scalars(select(AuditEvent.previous_hash)).all()
        assert len(set(hashes)) == 40  # no two events claim the same predecessor
