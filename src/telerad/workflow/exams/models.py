"""Exams: from the imaging request to the report, one row and one state machine; and the
timeline of what happened to each (decisions, arrivals, claims, escalations)."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from telerad.db import Base


class ExamState(StrEnum):
    """Where an exam stands (the transitions are in :mod:`telerad.workflow.exams.rules`)."""

    FILED = "filed"
    """Requested, waiting for a radiologist's justification."""
    VALIDATED = "validated"
    """Justified with a protocol: may be acquired (on the worklist of the scanners)."""
    REFUSED = "refused"
    """Not justified: the radiologist refused it with a reason."""
    ACQUIRING = "acquiring"
    """Images are arriving."""
    READY = "ready"
    """Complete (or a stroke alert with its first images): offered for reading."""
    IN_READING = "in_reading"
    """Claimed by one radiologist."""
    PRELIMINARY = "preliminary"
    """A preliminary report was released."""
    FINAL = "final"
    """The final report is signed."""
    DELIVERED = "delivered"
    """The final report reached the hospital."""
    CANCELLED = "cancelled"
    """Withdrawn by the site, or an unmatched study rejected or attached to another exam."""
    UNMATCHED = "unmatched"
    """Images that matched no request: the site must reconcile them (never a guess)."""


class Exam(Base):
    """One exam of a site: its request, its justification, its images and its reading."""

    __tablename__ = "exams"
    __table_args__ = (
        Index("ix_exams_queue", "state", "urgency_rank", "due_at"),
        Index("ix_exams_patient", "site_id", "patient_id"),
        Index("ix_exams_placer_order", "site_id", "placer_order_number", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    #: Urgency (sites.models.Urgency) and its rank (0 = stroke alert ... 3 = scheduled), for
    #: ordering in SQL; an unmatched exam has none until it is reconciled.
    urgency: Mapped[str | None] = mapped_column(String(32))
    urgency_rank: Mapped[int] = mapped_column(default=9)
    modality: Mapped[str] = mapped_column(String(16))

    # The patient (from the request, or from the images of an unmatched study).
    patient_id: Mapped[str] = mapped_column(String(64), default="")
    patient_name: Mapped[str] = mapped_column(String(200), default="")
    patient_birth_date: Mapped[str] = mapped_column(String(8), default="")
    patient_sex: Mapped[str] = mapped_column(String(1), default="")
    #: Identifiant National de Santé, when known.
    ins: Mapped[str] = mapped_column(String(32), default="")

    # The request.
    requesting_physician: Mapped[str] = mapped_column(String(200), default="")
    clinical_context: Mapped[str] = mapped_column(Text, default="")
    clinical_question: Mapped[str] = mapped_column(Text, default="")
    exam_asked: Mapped[str] = mapped_column(String(200), default="")
    #: JSON {"pregnancy": ..., "egfr": ..., "contrast_allergy": ...}.
    contraindications: Mapped[str] = mapped_column(Text, default="{}")
    filed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    filed_at: Mapped[dt.datetime | None]
    #: ORC-2 Placer Order Number of a request filed by the site's RIS over HL7: a resent
    #: order finds its exam instead of filing a second one.
    placer_order_number: Mapped[str | None] = mapped_column(String(64))

    # The justification.
    protocol_code: Mapped[str | None] = mapped_column(String(64))
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[dt.datetime | None]
    refusal_reason: Mapped[str] = mapped_column(Text, default="")
    #: Accession Number (0008,0050), SH: given when validated; matches the images.
    accession_number: Mapped[str | None] = mapped_column(String(16), unique=True)
    #: Pre-assigned Study Instance UID (the worklist gives it to the scanner); the study
    #: actually received once matched.
    study_instance_uid: Mapped[str | None] = mapped_column(String(64), unique=True)

    # The images.
    first_image_at: Mapped[dt.datetime | None]
    ready_at: Mapped[dt.datetime | None]
    #: Why the exam became ready: expected_series, marked_done, stable, stroke_alert.
    completion: Mapped[str] = mapped_column(String(32), default="")

    # The reading.
    reader_id: Mapped[int | None] = mapped_column(ForeignKey("radiologists.id"), index=True)
    claimed_at: Mapped[dt.datetime | None]
    #: When it must be claimed before escalating, and reported (the contract's target).
    claim_due_at: Mapped[dt.datetime | None]
    due_at: Mapped[dt.datetime | None]
    #: 0 offered to the team on duty; each escalation adds the next step of the cascade.
    escalation_level: Mapped[int] = mapped_column(default=0)
    #: When the escalation reached the coordinator (nobody else left to offer it to).
    coordinator_called_at: Mapped[dt.datetime | None]
    reported_at: Mapped[dt.datetime | None]

    created_at: Mapped[dt.datetime]
    #: Bumped by every change: conditional updates compare it.
    version: Mapped[int] = mapped_column(default=1)


class ExamEvent(Base):
    """One entry of an exam's timeline: what happened, when, by whom, why."""

    __tablename__ = "exam_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    exam_id: Mapped[int] = mapped_column(ForeignKey("exams.id"), index=True)
    at: Mapped[dt.datetime]
    kind: Mapped[str] = mapped_column(String(32))
    #: "user:12", "radiologist:3", "system", "dicom:CT_SCANNER".
    actor: Mapped[str] = mapped_column(String(120))
    #: JSON: the decision's fields, the escalation's reason, the state moved from and to.
    detail: Mapped[str] = mapped_column(Text, default="{}")
