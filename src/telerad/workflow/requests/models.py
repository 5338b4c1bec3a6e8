"""Protocols: what the radiologist validates a request with, and what it asks of the scanner
and of the reader."""

from __future__ import annotations

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from telerad.db import Base


class Protocol(Base):
    """An acquisition protocol of the catalogue (data, not code: importable, editable)."""

    __tablename__ = "protocols"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    modality: Mapped[str] = mapped_column(String(16))
    #: The subspecialty its reading needs (neuro, paediatric, ...), "" for any radiologist.
    subspecialty: Mapped[str] = mapped_column(String(32), default="")
    #: JSON list of the series it yields, by Series Description (matched case-insensitively,
    #: as a substring): the exam is complete when each has arrived.
    expected_series: Mapped[str] = mapped_column(Text, default="[]")
