"""The archive's index: studies, series, instances, and the conflicts refused at intake.

Study and series rows carry the attributes QIDO-RS matches on and the counters OHIF asks
for, kept up to date in the intake transaction; each instance row carries its DICOM JSON
metadata, computed once at ingest, so that WADO-RS metadata is a concatenation.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from telerad.db import Base


class Origin(StrEnum):
    """How an instance came in; every way goes through the same intake."""

    DICOM = "dicom"
    """C-STORE from a scanner or a hospital PACS."""
    STOW = "stow"
    """STOW-RS over HTTP."""
    IMPORT = "import"
    """``telerad import`` of Part-10 files."""


class StudyStatus(StrEnum):
    """Where a study is in its arrival."""

    RECEIVING = "receiving"
    """Instances have arrived within the stable age."""
    COMPLETE = "complete"
    """No instance has arrived for the stable age; ``StudyCompleted`` was published."""


class Study(Base):
    """One study (PS3.3 C.7.2.1), with the patient attributes of its first instance."""

    __tablename__ = "studies"
    __table_args__ = (
        Index("ix_studies_patient_id", "patient_id"),
        Index("ix_studies_accession_number", "accession_number"),
        Index("ix_studies_study_date", "study_date"),
        Index("ix_studies_status_last", "status", "last_instance_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"), index=True)
    patient_id: Mapped[str] = mapped_column(String(64), default="")
    patient_name: Mapped[str] = mapped_column(String(324), default="")
    patient_birth_date: Mapped[str] = mapped_column(String(8), default="")
    patient_sex: Mapped[str] = mapped_column(String(16), default="")
    study_date: Mapped[str] = mapped_column(String(8), default="")
    study_time: Mapped[str] = mapped_column(String(16), default="")
    accession_number: Mapped[str] = mapped_column(String(16), default="")
    study_id: Mapped[str] = mapped_column(String(16), default="")
    study_description: Mapped[str] = mapped_column(String(256), default="")
    referring_physician_name: Mapped[str] = mapped_column(String(324), default="")
    #: Backslash-separated, sorted (ModalitiesInStudy, PS3.18 Table 10.6.3-3).
    modalities_in_study: Mapped[str] = mapped_column(String(200), default="")
    number_of_series: Mapped[int] = mapped_column(default=0)
    number_of_instances: Mapped[int] = mapped_column(default=0)
    first_instance_id: Mapped[int | None]
    first_instance_at: Mapped[dt.datetime]
    last_instance_at: Mapped[dt.datetime]
    status: Mapped[str] = mapped_column(String(16), default=StudyStatus.RECEIVING)
    completed_at: Mapped[dt.datetime | None]


class Series(Base):
    """One series (PS3.3 C.7.3.1)."""

    __tablename__ = "series"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    series_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    modality: Mapped[str] = mapped_column(String(16), default="")
    series_number: Mapped[int | None]
    series_description: Mapped[str] = mapped_column(String(256), default="")
    series_date: Mapped[str] = mapped_column(String(8), default="")
    series_time: Mapped[str] = mapped_column(String(16), default="")
    body_part_examined: Mapped[str] = mapped_column(String(16), default="")
    number_of_instances: Mapped[int] = mapped_column(default=0)
    first_instance_id: Mapped[int | None]


class Instance(Base):
    """One stored instance: where its bytes are and its metadata."""

    __tablename__ = "instances"
    __table_args__ = (Index("ix_instances_series_number", "series_id", "instance_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"))
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    transfer_syntax_uid: Mapped[str] = mapped_column(String(64))
    instance_number: Mapped[int | None]
    rows: Mapped[int | None]
    columns: Mapped[int | None]
    number_of_frames: Mapped[int | None]
    blob_key: Mapped[str] = mapped_column(String(400))
    size: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[dt.datetime]
    origin: Mapped[str] = mapped_column(String(16))
    #: Calling AE title of the sender (DICOM origin), empty otherwise.
    source_ae_title: Mapped[str] = mapped_column(String(16), default="")
    #: DICOM JSON of the instance, bulk data as URIs relative to a base placeholder.
    metadata_json: Mapped[str] = mapped_column(Text)


class InstanceConflict(Base):
    """A second copy of a stored SOP Instance UID with other bytes: refused, kept for review."""

    __tablename__ = "instance_conflicts"

    id: Mapped[int] = mapped_column(primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[dt.datetime]
    origin: Mapped[str] = mapped_column(String(16))
    source_ae_title: Mapped[str] = mapped_column(String(16), default="")
    #: The refused bytes, kept under their own key for a human to compare.
    blob_key: Mapped[str] = mapped_column(String(400))
    size: Mapped[int] = mapped_column(BigInteger)
