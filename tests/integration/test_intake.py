"""The one intake on a real index (SQLite, or PostgreSQL with TELERAD_TEST_DATABASE)."""

from __future__ import annotations

import datetime as dt
import io
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa
from pydicom.dataset import Dataset
from sqlalchemy import func, select

from telerad import jobs
from telerad.archive.models import Instance, InstanceConflict, Origin, Study, StudyStatus
from telerad.archive.service import STUDY_COMPLETED
from telerad.clock import FrozenClock
from telerad.config import Settings
from telerad.db import transaction
from telerad.dicom.synthetic import SyntheticStudy, instance
from telerad.errors import InvalidDicom, TooLarge, UidMismatch
from telerad.runtime import Runtime
from telerad.workflow.exams import intake

SENDER = intake.Sender(origin=Origin.IMPORT, site_id=None)
START = dt.datetime(2026, 11, 23, 22, 30, tzinfo=dt.UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def rt(settings: Settings, clock: FrozenClock) -> Iterator[Runtime]:
    runtime = Runtime.open(settings, clock=clock)
    yield runtime
    runtime.close()


def _bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _ingest(rt: Runtime, data: bytes, **kwargs: Any) -> intake.Receipt:
    staged = rt.store.stage()
    staged.write(data)
    return rt.ingest(staged, sender=SENDER, **kwargs)


def _count(rt: Runtime, model: Any) -> int:
    with transaction(rt.sessions, readonly=True) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


STUDY = SyntheticStudy(slices=3, rows=16, columns=16)


def test_store_duplicate_and_conflict(rt: Runtime) -> None:
    first = _bytes(instance(STUDY, 0))
    assert _ingest(rt, first).outcome == intake.Outcome.STORED
    blobs = set(rt.store.keys())
    assert _ingest(rt, first).outcome == intake.Outcome.ALREADY_STORED
    assert set(rt.store.keys()) == blobs  # the second copy was dropped
    changed = instance(STUDY, 0)
    changed.PixelData = b"\x01\x00" * (16 * 16)
    receipt = _ingest(rt, _bytes(changed))
    assert receipt.outcome == intake.Outcome.CONFLICT
    assert _count(rt, Instance) == 1
    assert _count(rt, InstanceConflict) == 1
    with transaction(rt.sessions, readonly=True) as session:
        kept = session.scalars(select(Instance.blob_key)).one()
    with rt.store.open(kept) as fp:
        assert fp.read() == first  # the first copy is the one kept, byte for byte


@pytest.mark.parametrize("damage", ["truncated", "garbage", "no uid"])
def test_bad_input_changes_nothing(rt: Runtime, damage: str) -> None:
    good = _bytes(instance(STUDY, 1))
    if damage == "truncated":
        data = good[:-100]
    elif damage == "garbage":
        data = b"\x00" * 128 + b"DICM" + b"garbage" * 50
    else:
        ds = instance(STUDY, 1)
        del ds.StudyInstanceUID
        data = _bytes(ds)
    with pytest.raises(InvalidDicom):
        _ingest(rt, data)
    assert _count(rt, Instance) == 0
    assert _count(rt, Study) == 0
    assert list(rt.store.keys()) == []


def test_uid_announced_by_the_transport_must_match(rt: Runtime) -> None:
    data = _bytes(instance(STUDY, 2))
    with pytest.raises(UidMismatch):
        _ingest(rt, data, expected=intake.Expected(sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                                                  sop_instance_uid="1.2.3"))
    assert list(rt.store.keys()) == []


def test_size_limit(rt: Runtime) -> None:
    small = replace(rt, settings=replace(rt.settings, max_upload_bytes=100))
    with pytest.raises(TooLarge):
        _ingest(small, _bytes(instance(STUDY, 0)))
    assert _count(rt, Instance) == 0


COMPLETED: list[dict[str, object]] = []


@jobs.handler("test.on_study_completed")
def _on_completed(_ctx: jobs.JobContext, payload: dict[str, object]) -> None:
    COMPLETED.append(payload)


def test_study_completes_after_the_stable_age_and_reopens(rt: Runtime, clock: FrozenClock) -> None:
    jobs.subscribe(STUDY_COMPLETED, "test.on_study_completed")
    COMPLETED.clear()
    _ingest(rt, _bytes(instance(STUDY, 0)))
    clock.advance(dt.timedelta(seconds=0.6))
    _ingest(rt, _bytes(instance(STUDY, 1)))
    clock.advance(dt.timedelta(seconds=0.6))  # 1.2 s after the first, 0.6 s after the last
    jobs.run_due(rt.sessions, clock)
    with transaction(rt.sessions, readonly=True) as session:
        study = session.scalars(select(Study)).one()
        assert study.status == StudyStatus.RECEIVING
        assert study.first_instance_at == START
        assert study.last_instance_at == START + dt.timedelta(seconds=0.6)
    clock.advance(dt.timedelta(seconds=0.5))
    while jobs.run_due(rt.sessions, clock):
        pass
    with transaction(rt.sessions, readonly=True) as session:
        study = session.scalars(select(Study)).one()
        assert study.status == StudyStatus.COMPLETE
        assert study.number_of_instances == 2
    assert [p["study_instance_uid"] for p in COMPLETED] == [STUDY.study_instance_uid]
    # A late image reopens the study; it completes again, and the event is published again.
    _ingest(rt, _bytes(instance(STUDY, 2)))
    with transaction(rt.sessions, readonly=True) as session:
        assert session.scalars(select(Study.status)).one() == StudyStatus.RECEIVING
    clock.advance(dt.timedelta(seconds=2))
    while jobs.run_due(rt.sessions, clock):
        pass
    assert len(COMPLETED) == 2


def test_simultaneous_copies_of_one_instance(rt: Runtime) -> None:
    data = _bytes(instance(STUDY, 0))
    outcomes: list[intake.Outcome] = []
    barrier = threading.Barrier(4)

    def send() -> None:
        barrier.wait()
        outcomes.append(_ingest(rt, data).outcome)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == sorted([intake.Outcome.STORED] + [intake.Outcome.ALREADY_STORED] * 3)
    assert _count(rt, Instance) == 1
    assert len(list(rt.store.keys())) == 1


def test_ingest_survives_a_database_restart(rt: Runtime) -> None:
    """PostgreSQL only: connections killed under the pool (as by a server restart)."""
    if rt.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no server to restart")
    _ingest(rt, _bytes(instance(STUDY, 0)))
    database = rt.engine.url.database
    with sa.create_engine(rt.engine.url.set(database="postgres"),
                          isolation_level="AUTOCOMMIT").connect() as admin:
        admin.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": database})
    assert _ingest(rt, _bytes(instance(STUDY, 1))).outcome == intake.Outcome.STORED
    assert _count(rt, Instance) == 2
