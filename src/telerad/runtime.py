"""What a running telerad process holds: settings, the index, the blob store, the clock.

Every edge (HTTP, DICOM, worker, CLI) gets one :class:`Runtime` and opens its transactions
from it; domain services receive only what they use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

import telerad.archive.service  # registers the archive's job handlers
import telerad.reporting.critical  # noqa: F401 - registers the escalation of critical findings
from telerad.archive.blobstore import BlobStore, FolderBlobStore, StagedBlob
from telerad.audit import service as audit
from telerad.clock import Clock, SystemClock
from telerad.config import Settings
from telerad.db import make_engine, make_sessionmaker, transaction, upgrade
from telerad.workflow.exams import intake

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Runtime:
    """The shared state of one process."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: BlobStore
    clock: Clock
    recent_reads: audit.RecentReads = field(default_factory=audit.RecentReads)
    #: Set after a commit that added deliveries: the delivery worker sends at once.
    outbox_signal: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def open(
        cls, settings: Settings, *, clock: Clock | None = None, migrate: bool = True
    ) -> Runtime:
        """Open the data directory, creating or migrating the database on first start."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.database_url)
        if migrate:
            upgrade(engine)
        store = FolderBlobStore(settings.blob_dir)
        return cls(
            settings=settings,
            engine=engine,
            sessions=make_sessionmaker(engine),
            store=store,
            clock=clock or SystemClock(),
        )

    def close(self) -> None:
        self.engine.dispose()

    def audit(
        self, who: audit.Who, action: audit.Action, *, study_instance_uid: str = "",
        detail: dict[str, object] | None = None, outcome: str = "success",
    ) -> None:
        """Record an access to patient data in its own committed transaction (for reads;
        writes record their event in their own transaction). Repeated reads of one study by
        one actor within a minute are folded into the first (:class:`audit.RecentReads`)."""
        now = self.clock.now()
        if not self.recent_reads.should_record(who, action, study_instance_uid, now):
            return
        with transaction(self.sessions) as session:
            audit.record(session, who=who, action=action, now=now,
                         study_instance_uid=study_instance_uid, detail=detail, outcome=outcome)

    def ingest(
        self, staged: StagedBlob, *, sender: intake.Sender, expected: intake.Expected | None = None
    ) -> intake.Receipt:
        """The step every edge runs for one received instance: validate and make durable,
        then deduplicate and index in one committed transaction. Raises TeleradError.

        Called by C-STORE, STOW-RS and import alike; success is answered after it returns.
        """
        prepared = intake.prepare(
            self.store, staged, expected=expected, max_bytes=self.settings.max_upload_bytes
        )
        try:
            return self.step_twice(lambda session: intake.receive_instance(
                session, store=self.store, prepared=prepared, sender=sender,
                now=self.clock.now(), stable_age=self.settings.stable_age))
        except BaseException:
            # Not indexed: the durable copy must not linger as if it had been accepted.
            self.store.delete(prepared.blob_key)
            raise

    def step_twice(self, step: Callable[[Session], T]) -> T:
        """``step`` in one committed transaction, tried a second time when:

        - the same thing arrived at the same moment elsewhere (another association, another
          MLLP connection: PostgreSQL runs both transactions at once) and a unique key
          refused the second insert: the second try sees the first one's row;
        - the database connection was lost since its last use (database restarted): the
          pool was invalidated, the second try gets a fresh connection.
        """
        for attempt in (1, 2):
            try:
                with transaction(self.sessions) as session:
                    return step(session)
            except IntegrityError:
                if attempt == 2:
                    raise
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")
