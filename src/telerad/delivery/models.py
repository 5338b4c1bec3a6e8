"""Where reports go (a site's endpoints) and the outbox of what must reach them.

A :class:`Delivery` row is written in the transaction that signs the version it carries,
with the exact bytes to send; it is done only when the peer acknowledged it.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from telerad.db import Base


class ChannelKind(StrEnum):
    """How an endpoint is reached."""

    HL7_MLLP = "hl7_mllp"
    """HL7 v2.5 ORU^R01 over MLLP to the RIS; acknowledged by ACK AA."""
    DICOM_STORE = "dicom_store"
    """DICOM C-STORE (SR, Encapsulated PDF) to the hospital PACS; acknowledged by 0x0000."""


class Endpoint(Base):
    """A peer of a site that receives its reports."""

    __tablename__ = "endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int]
    #: DICOM: the PACS's AE title (Called AE Title, PS3.8 §7.1.1.2).
    called_ae_title: Mapped[str] = mapped_column(String(16), default="")
    #: HL7: MSH-5 and MSH-6 of what is sent (the RIS's application and facility).
    receiving_application: Mapped[str] = mapped_column(String(64), default="")
    receiving_facility: Mapped[str] = mapped_column(String(64), default="")
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime]


class DeliveryState(StrEnum):
    """Where one delivery stands."""

    PENDING = "pending"
    """Not yet acknowledged by the peer: sent when due, in order, retried while it fails."""
    ACKNOWLEDGED = "acknowledged"
    """The peer acknowledged it (ACK AA, DICOM success): never sent again."""
    FAILED = "failed"
    """The peer refused it for good, or it kept failing past the give-up age: flagged."""


class Delivery(Base):
    """One document for one endpoint: the outbox row."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_due", "state", "next_attempt_at"),
        Index("ix_deliveries_order", "endpoint_id", "exam_id", "sequence"),
        UniqueConstraint("endpoint_id", "idempotency_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    exam_id: Mapped[int] = mapped_column(ForeignKey("exams.id"), index=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id"))
    #: The report version it carries (reports.report_versions.id).
    report_version_id: Mapped[int] = mapped_column(ForeignKey("report_versions.id"))
    #: Order among the deliveries of one exam to one endpoint: lower first, always.
    sequence: Mapped[int]
    #: What it is: "ORU^R01", "SR", "PDF".
    document: Mapped[str] = mapped_column(String(16))
    #: The exact bytes to send (an ER7 message; a DICOM Part 10 file).
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    #: MSH-10 or SOP Instance UID: a resend after a crash is the same message to the peer.
    idempotency_key: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime]
    #: Reserved for the worker sending it until then.
    leased_until: Mapped[dt.datetime | None]
    #: The peer's last answer: "AA", "AE: ...", "0x0000", "connection refused".
    last_answer: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime]
    acknowledged_at: Mapped[dt.datetime | None]
    failed_at: Mapped[dt.datetime | None]
