"""Keeping the roster: radiologists and their credentials, shifts imported from CSV, and the
check that a coming week has no gap in a contract's coverage."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zoneinfo
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from telerad.errors import Conflict, InvalidInput, NotFound
from telerad.workflow.roster.models import Credential, Radiologist, ShiftRow
from telerad.workflow.roster.rules import Shift, french_holidays, gaps
from telerad.workflow.sites.contracts import cascade, coverage
from telerad.workflow.sites.models import Contract, Site, Team

CSV_COLUMNS = ("radiologist", "team", "start", "end", "role")


def add_radiologist(
    session: Session, *, name: str, site_ids: list[int], subspecialties: list[str],
    now: dt.datetime,
) -> Radiologist:
    """A radiologist credentialed for ``site_ids``."""
    name = name.strip()
    if not name:
        raise InvalidInput("a radiologist needs a name")
    if session.scalar(select(Radiologist.id).where(Radiologist.name == name)) is not None:
        raise Conflict(f"a radiologist named {name!r} already exists")
    radiologist = Radiologist(
        name=name, created_at=now,
        subspecialties=",".join(sorted({s.strip().lower() for s in subspecialties if s.strip()})),
    )
    session.add(radiologist)
    session.flush()
    for site_id in sorted(set(site_ids)):
        session.add(Credential(radiologist_id=radiologist.id, site_id=site_id))
    session.flush()
    return radiologist


def _instant(text: str, zone: zoneinfo.ZoneInfo, line: int, column: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"line {line}: {column} {text!r} is not a date and time "
                           "(YYYY-MM-DDTHH:MM, optionally with its UTC offset)") from None
    return value if value.tzinfo else value.replace(tzinfo=zone)


def import_shifts(session: Session, *, text: str, zone: zoneinfo.ZoneInfo) -> int:
    """Shifts from CSV (radiologist,team,start,end,role with role primary or backup); times
    without an offset are local to ``zone``. All lines or none: the first error says where."""
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != CSV_COLUMNS:
        raise InvalidInput(f"the first line must be: {','.join(CSV_COLUMNS)}")
    radiologists = {r.name: r.id for r in session.scalars(select(Radiologist))}
    teams = {t.name: t.id for t in session.scalars(select(Team))}
    rows = []
    for line, record in enumerate(reader, start=2):
        name, team = (record["radiologist"] or "").strip(), (record["team"] or "").strip()
        if name not in radiologists:
            raise InvalidInput(f"line {line}: no radiologist named {name!r}")
        if team not in teams:
            raise InvalidInput(f"line {line}: no team named {team!r}")
        role = (record["role"] or "").strip().lower()
        if role not in ("primary", "backup"):
            raise InvalidInput(f"line {line}: role is primary or backup, not {role!r}")
        start = _instant(record["start"] or "", zone, line, "start")
        end = _instant(record["end"] or "", zone, line, "end")
        if end <= start:
            raise InvalidInput(f"line {line}: the shift ends before it starts")
        rows.append(ShiftRow(radiologist_id=radiologists[name], team_id=teams[team],
                             starts_at=start, ends_at=end, backup=role == "backup"))
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
