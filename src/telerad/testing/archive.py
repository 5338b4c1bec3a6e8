"""Looking inside a running (or stopped) telerad's archive from a test: the index and the blobs.

Opens the same data directory and database as a :class:`~telerad.testing.peers.TeleradServer`
in-process, read-only in spirit: no migration is run and nothing is written.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from telerad.archive.models import Instance, InstanceConflict, Series, Study
from telerad.config import Settings
from telerad.db import transaction
from telerad.dicom.part10 import dataset_offset
from telerad.runtime import Runtime
from telerad.testing.peers import TeleradServer


@dataclass(frozen=True, kw_only=True)
class StoredInstance:
    """One row of the instance index with the UIDs above it."""

    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    study_instance_uid: str
    series_instance_uid: str
    blob_key: str
    size: int
    source_ae_title: str
    origin: str


def dataset_bytes(data: bytes) -> bytes:
    """The dataset of a Part-10 file: what follows the File Meta Information (PS3.10 §7.1)."""
    return data[dataset_offset(data) :]


def file_dataset(path: Path) -> bytes:
    return dataset_bytes(path.read_bytes())


@dataclass
class ArchiveView:
    """The index and blob store of one telerad data directory."""

    runtime: Runtime

    def instances(self) -> dict[str, StoredInstance]:
        """Every indexed instance, by SOP Instance UID."""
        query = (
            select(Instance, Series.series_instance_uid, Study.study_instance_uid)
            .join(Series, Series.id == Instance.series_id)
            .join(Study, Study.id == Instance.study_id)
        )
        with transaction(self.runtime.sessions, readonly=True) as session:
            return {
                i.sop_instance_uid: StoredInstance(
                    sop_instance_uid=i.sop_instance_uid, sop_class_uid=i.sop_class_uid,
                    transfer_syntax_uid=i.transfer_syntax_uid, study_instance_uid=study,
                    series_instance_uid=series, blob_key=i.blob_key, size=i.size,
                    source_ae_title=i.source_ae_title, origin=i.origin,
                )
                for i, series, study in session.execute(query)
            }

    def instance_count(self, sop_instance_uid: str) -> int:
        with transaction(self.runtime.sessions, readonly=True) as session:
            return int(session.scalar(
                select(func.count()).select_from(Instance)
                .where(Instance.sop_instance_uid == sop_instance_uid)
            ) or 0)

    def studies(self) -> dict[str, tuple[int, int, str]]:
        """Every study: (number of series, number of instances, status) by Study UID."""
        with transaction(self.runtime.sessions, readonly=True) as session:
            return {
                s.study_instance_uid: (s.number_of_series, s.number_of_instances, s.status)
                for s in session.scalars(select(Study))
            }

    def conflicts(self) -> list[tuple[str, str, str]]:
        """Recorded conflicts: (SOP Instance UID, blob key, source AE title)."""
        with transaction(self.runtime.sessions, readonly=True) as session:
            return [(c.sop_instance_uid, c.blob_key, c.source_ae_title)
                    for c in session.scalars(select(InstanceConflict))]

    def blob(self, key: str) -> bytes:
        with contextlib.closing(self.runtime.store.open(key)) as fp:
            return fp.read()

    def dataset(self, key: str) -> bytes:
        """The dataset bytes of the blob stored under ``key``."""
        return dataset_bytes(self.blob(key))

    def blob_keys(self) -> set[str]:
        """Every committed blob (``.staging`` excluded)."""
        return set(self.runtime.store.keys())

    @property
    def staging(self) -> Path:
        return self.runtime.settings.blob_dir / ".staging"

    def staged_files(self) -> list[Path]:
        return sorted(p for p in self.staging.iterdir()) if self.staging.exists() else []


@contextlib.contextmanager
def open_archive(server: TeleradServer) -> Iterator[ArchiveView]:
    """The archive of ``server`` (its data directory and ``TELERAD_DATABASE_URL``)."""
    settings = Settings(data_dir=server.data_dir,
                        database_url=server.env.get("TELERAD_DATABASE_URL", ""))
    runtime = Runtime.open(settings, migrate=False)
    try:
        yield ArchiveView(runtime)
    finally:
        runtime.close()


def api_get(server: TeleradServer, token: str, path: str) -> object:
    """``GET {base_url}{path}`` with the bearer token; the decoded JSON."""
    request = urllib.request.Request(
        f"{server.base_url}{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_for_study_status(server: TeleradServer, token: str, study_instance_uid: str, *,
                          status: str = "complete", timeout: float = 30.0) -> dict[str, object]:
    """Poll ``GET /api/studies/{uid}`` until the study has ``status``; return it."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = api_get(server, token, f"/api/studies/{study_instance_uid}")
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
        else:
            if isinstance(last, dict) and last.get("status") == status:
                return last
        time.sleep(0.2)
    raise TimeoutError(f"study {study_instance_uid} not {status} after {timeout} s: {last!r}")
