"""The audit trail: one row per access to patient data, chained by hashes."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from telerad.db import Base


class AuditEvent(Base):
    """Who did what to which patient data, when, from where.

    ``hash`` covers every other column and the previous row's hash: editing, deleting or
    inserting a row anywhere breaks the chain, which ``telerad audit verify`` reports.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[dt.datetime]
    #: ``service`` (token), ``dicom`` (a sender's AE title), ``cli`` (a local operator), ...
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32), index=True)
    #: The StudyInstanceUID concerned, or empty for a search.
    study_instance_uid: Mapped[str] = mapped_column(String(64), index=True, default="")
    #: IP address or AE title the request came from.
    source: Mapped[str] = mapped_column(String(64), default="")
    outcome: Mapped[str] = mapped_column(String(16), default="success")
    #: JSON with what else identifies the access (series, instance, query); no patient names.
    detail: Mapped[str] = mapped_column(Text, default="{}")
    previous_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
