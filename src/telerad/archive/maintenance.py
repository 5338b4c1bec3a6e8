"""Keeping the blob store and the index in step after a crash.

A blob is made durable before the transaction that indexes it commits; a process killed in
between leaves a blob the index does not know. It was never acknowledged (0x0000 follows
the commit), so the sender will send it again — but it must not linger unseen: after an
unclean stop, such orphans are moved to a quarantine folder, where nothing serves them and
an operator may inspect or import them.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from telerad.archive.blobstore import BlobStore
from telerad.archive.models import Instance, InstanceConflict

LOGGER = logging.getLogger(__name__)


def orphan_keys(session: Session, store: BlobStore) -> list[str]:
    """Blob keys that neither an instance nor a recorded conflict refers to."""
    known = set(session.scalars(select(Instance.blob_key)))
    known.update(session.scalars(select(InstanceConflict.blob_key)))
    stored = store.keys()  # a BlobStore's, not a dict's
    return sorted(key for key in stored if key not in known)


def quarantine_orphans(session: Session, store: BlobStore, quarantine: Path) -> int:
    """Move orphan blobs out of the store into ``quarantine``; return how many."""
    keys = orphan_keys(session, store)
    for key in keys:
        target = quarantine / key
        target.parent.mkdir(parents=True, exist_ok=True)
        with store.open(key) as source, target.open("wb") as out:
            shutil.copyfileobj(source, out, 1024 * 1024)
        store.delete(key)
    if keys:
        LOGGER.warning("moved %d blob(s) no index entry refers to into %s", len(keys), quarantine)
    return len(keys)
