"""Sites (hospitals), their devices (the AE titles that may send us images), their contracts
and the reading teams those contracts name."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from telerad.db import Base


class Site(Base):
    """A hospital whose exams telerad carries."""

    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    #: IANA zone of the site's local time (rules and pages work in it).
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Paris")
    #: MSH-4 Sending Facility of the site's RIS: its HL7 orders are filed for this site.
    hl7_facility: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: Minutes the site has to acknowledge a critical finding before it escalates.
    critical_ack_minutes: Mapped[int] = mapped_column(default=15)
    #: Who is called when a critical finding stays unacknowledged (the site's on-call
    #: manager, e.g. the emergency department's senior on duty), and at what number.
    on_call_manager: Mapped[str] = mapped_column(String(200), default="")
    on_call_phone: Mapped[str] = mapped_column(String(40), default="")
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


class Urgency(StrEnum):
    """How soon an exam must be read."""

    STROKE_ALERT = "stroke_alert"
    """Stroke alert (télé-AVC): read as images arrive, thrombolysis decision at stake."""
    LIFE_THREATENING = "life_threatening"
    """Life-threatening emergency."""
    URGENT = "urgent"
    """Urgent, not life-threatening."""
    SCHEDULED = "scheduled"
    """Planned exam."""


#: Turnaround targets when a contract names none (minutes from complete to reported).
DEFAULT_TARGETS = {Urgency.STROKE_ALERT: 15, Urgency.LIFE_THREATENING: 30, Urgency.URGENT: 60,
                   Urgency.SCHEDULED: 24 * 60}


class TeamKind(StrEnum):
    """Where a reading team stands in the charter's cascade."""

    LOCAL = "local"
    """The site's own radiologists."""
    GROUP = "group"
    """The hospital group (GHT)."""
    REGION = "region"
    """A regional network."""
    PROVIDER = "provider"
    """A teleradiology company."""


class Team(Base):
    """A group of radiologists that takes duty together."""

    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16))


class Contract(Base):
    """A site's agreement for one modality."""

    __tablename__ = "contracts"
    __table_args__ = (UniqueConstraint("site_id", "modality"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    modality: Mapped[str] = mapped_column(String(16))
    #: JSON list of {"days": [...], "start": "HH:MM", "end": "HH:MM"}.
    windows: Mapped[str] = mapped_column(Text)
    #: JSON {urgency: minutes}.
    targets: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime]


class ContractTeam(Base):
    """One step of a contract's cascade."""

    __tablename__ = "contract_teams"

    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id"), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
