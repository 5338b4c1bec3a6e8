"""The one way in for every image: C-STORE, STOW-RS, web upload and ``telerad import``.

An edge streams the received bytes into a staged blob, then calls :func:`receive_instance`
in its own transaction and answers success only after that transaction has committed:

1. the staged bytes are validated and their header read (nothing touches the index yet);
2. the blob is made durable under a fresh key (fsync, atomic rename);
3. in the edge's transaction: same SOP Instance UID already stored with the same dataset
   bytes → *already stored* (the new copy is dropped); with other bytes → *conflict*, the
   first copy kept and the refused one recorded; otherwise the instance is indexed.

A new study of a known site then meets the requests in the same transaction
(:func:`telerad.workflow.exams.service.on_new_study`), so that every way in gets it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.orm import Session

from telerad.archive import service as archive
from telerad.archive.blobstore import BlobStore, StagedBlob, new_key, same_content
from telerad.archive.models import Origin
from telerad.audit import service as audit
from telerad.dicom.header import InstanceHeader, read_instance
from telerad.errors import TooLarge, UidMismatch
from telerad.workflow.exams import service as exams

LOGGER = logging.getLogger(__name__)


class Outcome(StrEnum):
    """What became of one received instance."""

    STORED = "stored"
    """New: durable and indexed."""
    ALREADY_STORED = "already_stored"
    """Same SOP Instance UID and same bytes as a stored instance: nothing duplicated."""
    CONFLICT = "conflict"
    """Same SOP Instance UID, other bytes: refused, first copy kept, conflict recorded."""


@dataclass(frozen=True, kw_only=True)
class Sender:
    """Who sent the instance and how."""

    origin: Origin
    site_id: int | None
    ae_title: str = ""


@dataclass(frozen=True, kw_only=True)
class Expected:
    """UIDs the transport already announced: the C-STORE command's (PS3.7 §9.1.1), or the
    study a STOW-RS request targets (PS3.18 §10.5.1). None: not announced."""

    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None
    study_instance_uid: str | None = None

    def check(self, header: InstanceHeader) -> None:
        """UidMismatch unless the data set is what was announced."""
        for field, announced, actual in (
            ("SOP Class UID", self.sop_class_uid, header.sop_class_uid),
            ("SOP Instance UID", self.sop_instance_uid, header.sop_instance_uid),
            ("Study Instance UID", self.study_instance_uid, header.study_instance_uid),
        ):
            if announced is not None and announced != actual:
                raise UidMismatch(f"the data set's {field} is not the one announced")


@dataclass(frozen=True, kw_only=True)
class Receipt:
    """The result an edge translates into its own status."""

    outcome: Outcome
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    instance_id: int | None


@dataclass(frozen=True, kw_only=True)
class PreparedInstance:
    """A validated, durable blob not yet indexed."""

    header: InstanceHeader
    blob_key: str
    size: int


def prepare(
    store: BlobStore, staged: StagedBlob, *, expected: Expected | None = None,
    max_bytes: int | None = None,
) -> PreparedInstance:
    """Steps 1-2: validate the staged bytes and make them durable. Touches no index.

    On any error the staged bytes are discarded and the error raised: nothing changed.
    """
    try:
        if max_bytes is not None and staged.size > max_bytes:
            raise TooLarge(f"instance of {staged.size} bytes is above the limit of {max_bytes}")
        header = read_instance(staged.view(), size=staged.size)
        if expected is not None:
            expected.check(header)
        key = new_key(
            "studies", header.study_instance_uid, header.series_instance_uid,
            header.sop_instance_uid,
        )
    except Exception:
        staged.discard()
        raise
    store.commit(staged, key)
    return PreparedInstance(header=header, blob_key=key, size=staged.size)


def receive_instance(
    session: Session,
    *,
    store: BlobStore,
    prepared: PreparedInstance,
    sender: Sender,
    now: dt.datetime,
    stable_age: float,
) -> Receipt:
    """Step 3, in the caller's transaction: deduplicate, record a conflict, or index."""
    header = prepared.header
    existing = archive.find_instance(session, header.sop_instance_uid)
    instance_id: int | None
    if existing is None:
        instance_id, new_study = archive.index_instance(
            session,
            header=header,
            blob_key=prepared.blob_key,
            size=prepared.size,
            origin=sender.origin,
            source_ae_title=sender.ae_title,
            site_id=sender.site_id,
            now=now,
            stable_age=stable_age,
        )
        outcome = Outcome.STORED
        if sender.site_id is not None and new_study:
            exams.on_new_study(session, header=header, site_id=sender.site_id,
                               actor=_actor(sender), now=now)
        if new_study:  # one event per study and sender; each instance row keeps its origin
            _audit(session, sender, header, now, "success")
    elif same_content(store, existing.blob_key, prepared.blob_key):
        store.delete(prepared.blob_key)
        instance_id, outcome = existing.id, Outcome.ALREADY_STORED
    else:
        conflict = archive.record_conflict(
            session,
            header=header,
            blob_key=prepared.blob_key,
            size=prepared.size,
            origin=sender.origin,
            source_ae_title=sender.ae_title,
            now=now,
        )
        LOGGER.warning(
            "conflict #%s: SOP Instance %s already stored with other bytes; first copy kept",
            conflict.id, header.sop_instance_uid,
        )
        _audit(session, sender, header, now, "refused")
        instance_id, outcome = existing.id, Outcome.CONFLICT
    return Receipt(
        outcome=outcome,
        sop_class_uid=header.sop_class_uid,
        sop_instance_uid=header.sop_instance_uid,
        study_instance_uid=header.study_instance_uid,
        series_instance_uid=header.series_instance_uid,
        instance_id=instance_id,
    )


def _actor(sender: Sender) -> str:
    return f"{sender.origin}:{sender.ae_title}" if sender.ae_title else str(sender.origin)


def _audit(session: Session, sender: Sender, header: InstanceHeader, now: dt.datetime,
           outcome: str) -> None:
    audit.record(
        session,
        who=audit.Who(kind=str(sender.origin), id=sender.ae_title or str(sender.origin),
                      source=sender.ae_title),
        action=audit.Action.STORE,
        now=now,
        study_instance_uid=header.study_instance_uid,
        outcome=outcome,
        detail={"site_id": sender.site_id, "sop_instance_uid": header.sop_instance_uid},
    )
