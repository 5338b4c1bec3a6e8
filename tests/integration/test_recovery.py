"""After an unclean stop, the server clears staged data and quarantines orphan blobs."""

from __future__ import annotations

import io

from telerad.archive.blobstore import new_key
from telerad.archive.models import Origin
from telerad.cli.server import RUNNING_MARKER
from telerad.config import Settings
from telerad.dicom.synthetic import SyntheticStudy, instance
from telerad.runtime import Runtime
from telerad.testing.peers import TeleradServer
from telerad.workflow.exams import intake

STUDY = SyntheticStudy(slices=2, rows=16, columns=16)


def _part10(index: int) -> bytes:
    buffer = io.BytesIO()
    instance(STUDY, index).save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_orphans_of_a_crash_are_quarantined(settings: Settings) -> None:
    runtime = Runtime.open(settings)
    try:
        staged = runtime.store.stage()
        staged.write(_part10(0))
        receipt = runtime.ingest(staged, sender=intake.Sender(origin=Origin.IMPORT, site_id=None))
        indexed = set(runtime.store.keys())
        # What a crash leaves: a durable blob the index never got, and a half-received one.
        orphan = runtime.store.stage()
        orphan.write(_part10(1))
        orphan_key = new_key("studies", "1.2.3", "1.2.3.4", "1.2.3.4.5")
        runtime.store.commit(orphan, orphan_key)
        runtime.store.stage().write(b"half an image")
    finally:
        runtime.close()
    (settings.data_dir / RUNNING_MARKER).touch()

    server = TeleradServer(data_dir=settings.data_dir,
                           env={"TELERAD_DATABASE_URL": settings.database_url})
    server.start()
    try:
        assert (settings.data_dir / RUNNING_MARKER).exists()  # this run's own marker
    finally:
        assert server.stop() == 0
    assert not (settings.data_dir / RUNNING_MARKER).exists()

    runtime = Runtime.open(settings)
    try:
        assert set(runtime.store.keys()) == indexed  # the indexed blob kept, the orphan gone
        assert receipt.outcome == intake.Outcome.STORED
        quarantined = settings.data_dir / "quarantine" / orphan_key
        assert quarantined.read_bytes() == _part10(1)
        assert not list((settings.blob_dir / ".staging").iterdir())
    finally:
        runtime.close()
