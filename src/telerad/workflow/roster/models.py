"""The duty roster: radiologists, the sites they may read for, and their shifts."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from telerad.db import Base


class Radiologist(Base):
    """A radiologist who takes duty (linked to a user account once they sign in)."""

    __tablename__ = "radiologists"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: Comma-separated: neuro, paediatric, msk, cardiac, ...
    subspecialties: Mapped[str] = mapped_column(String(400), default="")
    created_at: Mapped[dt.datetime]


class Credential(Base):
    """A site a radiologist may read for."""

    __tablename__ = "credentials"

    radiologist_id: Mapped[int] = mapped_column(ForeignKey("radiologists.id"), primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), primary_key=True)


class ShiftRow(Base):
    """A radiologist on duty for a team between two instants, primary or back-up."""

    __tablename__ = "shifts"
    __table_args__ = (Index("ix_shifts_span", "starts_at", "ends_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    radiologist_id: Mapped[int] = mapped_column(ForeignKey("radiologists.id"), index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    backup: Mapped[bool] = mapped_column(default=False)
