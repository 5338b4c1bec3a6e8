"""Sites (hospitals) and their devices (the AE titles that may send us images)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from telerad.db import Base


class Site(Base):
    """A hospital whose exams telerad carries."""

    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    #: IANA zone of the site's local time (rules and pages work in it).
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Paris")
    created_at: Mapped[dt.datetime]

    devices: Mapped[list[Device]] = relationship(back_populates="site", order_by="Device.id")


class Device(Base):
    """A sender of a site (scanner, hospital PACS), known by its calling AE title."""

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    #: Calling AE Title (PS3.8 §7.1.1.3); unique across sites so a sender maps to one site.
    ae_title: Mapped[str] = mapped_column(String(16), unique=True)
    created_at: Mapped[dt.datetime]

    site: Mapped[Site] = relationship(back_populates="devices")
