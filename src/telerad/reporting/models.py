"""Reports, their signed versions, and critical findings with the calls that announced them.

A report is one per exam. Its draft changes as the radiologist types; each release
(preliminary, final, addendum) freezes a :class:`ReportVersion` that never changes again:
its content, its rendered text and PDF, who signed it, when, and the SHA-256 of the content.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from telerad.db import Base


class ReportStatus(StrEnum):
    """Where a report stands (the moves are in :mod:`telerad.reporting.rules`)."""

    DRAFT = "draft"
    """Being written; nothing released yet."""
    PRELIMINARY = "preliminary"
    """A preliminary version was released to the hospital; the final is still to come."""
    FINAL = "final"
    """The final version is signed: later changes are addenda."""


class VersionKind(StrEnum):
    """What a frozen version is."""

    PRELIMINARY = "preliminary"
    """Released before the final, e.g. to the emergency doctor at once."""
    FINAL = "final"
    """The signed report."""
    ADDENDUM = "addendum"
    """A signed correction or complement to the final report."""


class Report(Base):
    """The report of one exam: its template, its current draft, and its status."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    exam_id: Mapped[int] = mapped_column(ForeignKey("exams.id"), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=ReportStatus.DRAFT)
    template_code: Mapped[str] = mapped_column(String(64))
    template_version: Mapped[int]
    #: JSON: the template as it was when the report began (a later template edit never
    #: changes an old report).
    template: Mapped[str] = mapped_column(Text)
    #: JSON {field id: value}: the draft of the report, or of the next addendum once final.
    draft: Mapped[str] = mapped_column(Text, default="{}")
    #: Bumped by each saved draft: a save names the revision it started from.
    revision: Mapped[int] = mapped_column(default=0)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class ReportVersion(Base):
    """A released version of a report; written once, never updated."""

    __tablename__ = "report_versions"
    __table_args__ = (UniqueConstraint("report_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"), index=True)
    exam_id: Mapped[int] = mapped_column(ForeignKey("exams.id"), index=True)
    #: 1, 2, 3 ... in release order.
    number: Mapped[int]
    kind: Mapped[str] = mapped_column(String(16))
    #: JSON {field id: value} as signed.
    content: Mapped[str] = mapped_column(Text)
    #: The report as plain text (what the ORU's OBX text lines carry).
    text: Mapped[str] = mapped_column(Text)
    signed_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: The signer's name as DICOM PN (FAMILY^Given), frozen with the version.
    signer_name: Mapped[str] = mapped_column(String(200))
    signed_at: Mapped[dt.datetime]
    #: SHA-256 (hex) of the canonical JSON of what was signed (content, text, signer, time).
    content_sha256: Mapped[str] = mapped_column(String(64))
    #: The rendered PDF: the document the hospital files.
    pdf: Mapped[bytes] = mapped_column(LargeBinary)


class CriticalFinding(Base):
    """A finding the hospital must hear of within minutes (ACR category 1), and whether the
    hospital acknowledged it."""

    __tablename__ = "critical_findings"
    __table_args__ = (Index("ix_critical_findings_open", "acknowledged_at", "ack_due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    exam_id: Mapped[int] = mapped_column(ForeignKey("exams.id"), index=True)
    finding: Mapped[str] = mapped_column(Text)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime]
    #: The hospital must acknowledge by then, else the finding escalates.
    ack_due_at: Mapped[dt.datetime]
    acknowledged_at: Mapped[dt.datetime | None]
    acknowledged_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    acknowledgement_note: Mapped[str] = mapped_column(Text, default="")
    #: 0 not escalated; 1 a second call is due; 2 the site's on-call manager is to be called.
    escalation_level: Mapped[int] = mapped_column(default=0)


class CriticalCall(Base):
    """One phone call announcing a critical finding: who called whom, at what number,
    when, what was said, and whether the person read it back."""

    __tablename__ = "critical_calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    finding_id: Mapped[int] = mapped_column(ForeignKey("critical_findings.id"), index=True)
    caller_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    called_person: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(40))
    called_at: Mapped[dt.datetime]
    said: Mapped[str] = mapped_column(Text)
    read_back: Mapped[bool]
    recorded_at: Mapped[dt.datetime]


class ImportedTemplate(Base):
    """A report template imported by an administrator (JSON or IHE MRRT HTML), beside the
    built-in ones shipped with telerad; a new version of a code supersedes the older."""

    __tablename__ = "report_templates"
    __table_args__ = (UniqueConstraint("code", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    version: Mapped[int]
    #: JSON, as :func:`telerad.reporting.templates.template_json` writes it.
    definition: Mapped[str] = mapped_column(Text)
    imported_at: Mapped[dt.datetime]
