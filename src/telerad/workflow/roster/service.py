"""Keeping the roster: radiologists and their credentials, shifts imported from CSV or
iCalendar, and the check that a coming week has no gap in a contract's coverage."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zoneinfo
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from telerad.auth.models import Role, User, UserSite
from telerad.errors import Conflict, InvalidInput, NotFound
from telerad.workflow.roster.ical import ShiftLine, is_calendar, parse_calendar
from telerad.workflow.roster.models import Credential, Radiologist, ShiftRow
from telerad.workflow.roster.rules import MAX_SHIFT, Shift, french_holidays, gaps
from telerad.workflow.sites.contracts import cascade, coverage
from telerad.workflow.sites.models import Contract, Site, Team

CSV_COLUMNS = ("radiologist", "team", "start", "end", "role")


def add_radiologist(
    session: Session, *, name: str, site_ids: list[int], subspecialties: list[str],
    now: dt.datetime, username: str | None = None,
) -> Radiologist:
    """A radiologist credentialed for ``site_ids``; linked to the account ``username`` (a
    radiologist or expert), who then sees the patients of exactly those sites."""
    name = name.strip()
    if not name:
        raise InvalidInput("a radiologist needs a name")
    if session.scalar(select(Radiologist.id).where(Radiologist.name == name)) is not None:
        raise Conflict(f"a radiologist named {name!r} already exists")
    user = None
    if username is not None:
        user = session.scalar(select(User).where(User.username == username.strip().lower()))
        if user is None or user.role not in (Role.RADIOLOGIST, Role.EXPERT):
            raise InvalidInput(f"no radiologist or expert account named {username!r}")
        if session.scalar(select(Radiologist.id).where(Radiologist.user_id == user.id)):
            raise Conflict(f"the account {username!r} is already a radiologist of the roster")
    radiologist = Radiologist(
        name=name, created_at=now, user_id=user.id if user else None,
        subspecialties=",".join(sorted({s.strip().lower() for s in subspecialties if s.strip()})),
    )
    session.add(radiologist)
    session.flush()
    for site_id in sorted(set(site_ids)):
        session.add(Credential(radiologist_id=radiologist.id, site_id=site_id))
    if user is not None:  # the account's scope follows the credentials
        session.execute(delete(UserSite).where(UserSite.user_id == user.id))
        session.add_all(UserSite(user_id=user.id, site_id=s) for s in sorted(set(site_ids)))
    session.flush()
    return radiologist


def _instant(text: str, zone: zoneinfo.ZoneInfo, line: int, column: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"line {line}: {column} {text!r} is not a date and time "
                           "(YYYY-MM-DDTHH:MM, optionally with its UTC offset)") from None
    return value if value.tzinfo else value.replace(tzinfo=zone)


#: How far ahead an iCalendar's recurrences are expanded (an RRULE may never end).
ICAL_HORIZON = dt.timedelta(days=120)


def import_shifts(
    session: Session, *, text: str, zone: zoneinfo.ZoneInfo, now: dt.datetime | None = None,
    format: Literal["csv", "ics"] | None = None,
) -> int:
    """Shifts from CSV or iCalendar (``format``, else detected: an iCalendar begins with
    BEGIN:VCALENDAR); times without an offset are local to ``zone``. All shifts or none:
    the first error says where. Both formats meet in one check of names and times.

    CSV: radiologist,team,start,end,role with role primary or backup. iCalendar: see
    ``ical.py``; recurrences are expanded from ``now`` for ICAL_HORIZON, so ``now`` (from
    the injected clock) is required for it."""
    kind = format or ("ics" if is_calendar(text) else "csv")
    lines: Iterable[ShiftLine]
    if kind == "ics":
        if now is None:
            raise ValueError("an iCalendar import needs now= to expand its recurrences")
        lines = parse_calendar(text, zone=zone, start=now, until=now + ICAL_HORIZON)
    elif kind == "csv":
        lines = _csv_lines(text, zone)
    else:
        raise ValueError(f"format is csv or ics, not {format!r}")
    return _insert_shifts(session, lines)


def _csv_lines(text: str, zone: zoneinfo.ZoneInfo) -> Iterator[ShiftLine]:
    """The CSV's lines one by one, so a bad line is reported after the lines before it."""
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != CSV_COLUMNS:
        raise InvalidInput(f"the first line must be: {','.join(CSV_COLUMNS)}")
    for line, record in enumerate(reader, start=2):
        role = (record["role"] or "").strip().lower()
        if role not in ("primary", "backup"):
            raise InvalidInput(f"line {line}: role is primary or backup, not {role!r}")
        yield ShiftLine(
            radiologist=(record["radiologist"] or "").strip(),
            team=(record["team"] or "").strip(),
            start=_instant(record["start"] or "", zone, line, "start"),
            end=_instant(record["end"] or "", zone, line, "end"),
            backup=role == "backup", where=f"line {line}",
        )


def _insert_shifts(session: Session, lines: Iterable[ShiftLine]) -> int:
    """The one way shifts go in, whatever the file: names that exist, an end after the
    start, and nothing added unless every line passes."""
    radiologists = {r.name: r.id for r in session.scalars(select(Radiologist))}
    teams = {t.name: t.id for t in session.scalars(select(Team))}
    rows = []
    for shift in lines:
        if shift.radiologist not in radiologists:
            raise InvalidInput(f"{shift.where}: no radiologist named {shift.radiologist!r}")
        if shift.team not in teams:
            raise InvalidInput(f"{shift.where}: no team named {shift.team!r}")
        if shift.end <= shift.start:
            raise InvalidInput(f"{shift.where}: the shift ends before it starts")
        if shift.end - shift.start > MAX_SHIFT:
            raise InvalidInput(f"{shift.where}: a shift lasts at most "
                               f"{MAX_SHIFT.total_seconds() / 3600:g} hours (split it)")
        rows.append(ShiftRow(radiologist_id=radiologists[shift.radiologist],
                             team_id=teams[shift.team], starts_at=shift.start,
                             ends_at=shift.end, backup=shift.backup))
    session.add_all(rows)
    session.flush()
    return len(rows)


@dataclass(frozen=True, kw_only=True)
class Gap:
    """A span a contract requires and no credentialed primary radiologist covers."""

    start: dt.datetime
    end: dt.datetime


def roster_gaps(
    session: Session, *, site_id: int, modality: str, start: dt.datetime, end: dt.datetime,
) -> list[Gap]:
    """Gaps in the coverage of the site's contract for ``modality`` between two instants,
    counting the primary shifts of the cascade's teams by radiologists credentialed for
    the site."""
    site = session.get(Site, site_id)
    contract = session.scalar(select(Contract).where(Contract.site_id == site_id,
                                                     Contract.modality == modality.upper()))
    if site is None or contract is None:
        raise NotFound(f"no {modality.upper()} contract for this site")
    team_ids = [t.id for t in cascade(session, contract)]
    rows = session.scalars(
        select(ShiftRow)
        .join(Credential, (Credential.radiologist_id == ShiftRow.radiologist_id)
              & (Credential.site_id == site_id))
        .where(ShiftRow.team_id.in_(team_ids), ShiftRow.ends_at > start,
               ShiftRow.starts_at < end)
    )
    shifts = [Shift(radiologist_id=r.radiologist_id, team=str(r.team_id), start=r.starts_at,
                    end=r.ends_at, backup=r.backup) for r in rows]
    zone = zoneinfo.ZoneInfo(site.timezone)
    return [Gap(start=a, end=b) for a, b in gaps(
        coverage(contract), shifts, zone=zone, is_holiday=french_holidays(), start=start,
        end=end)]
