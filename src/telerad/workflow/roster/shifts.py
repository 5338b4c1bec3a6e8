"""Editing the roster one shift at a time (the API's way; files go through
``roster.service.import_shifts``)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from telerad.errors import InvalidInput, NotFound
from telerad.workflow.roster.models import Credential, Radiologist, ShiftRow
from telerad.workflow.roster.rules import Shift
from telerad.workflow.sites.models import Team


def add_shift(session: Session, *, radiologist_id: int, team_id: int, start: dt.datetime,
              end: dt.datetime, backup: bool) -> ShiftRow:
    if session.get(Radiologist, radiologist_id) is None:
        raise NotFound(f"no radiologist #{radiologist_id}")
    if session.get(Team, team_id) is None:
        raise NotFound(f"no team #{team_id}")
    try:  # the rules' own checks: aware times, end after start, not too long
        Shift(radiologist_id=radiologist_id, team=str(team_id), start=start, end=end,
              backup=backup)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    row = ShiftRow(radiologist_id=radiologist_id, team_id=team_id, starts_at=start,
                   ends_at=end, backup=backup)
    session.add(row)
    session.flush()
    return row


def delete_shift(session: Session, shift_id: int) -> None:
    row = session.get(ShiftRow, shift_id)
    if row is None:
        raise NotFound(f"no shift #{shift_id}")
    session.delete(row)
    session.flush()


def list_shifts(session: Session, *, start: dt.datetime, end: dt.datetime,
                team_id: int | None = None) -> list[ShiftRow]:
    """Shifts overlapping [start, end), by start."""
    query = select(ShiftRow).where(ShiftRow.ends_at > start, ShiftRow.starts_at < end)
    if team_id is not None:
        query = query.where(ShiftRow.team_id == team_id)
    return list(session.scalars(query.order_by(ShiftRow.starts_at, ShiftRow.id)))


def list_radiologists(session: Session) -> list[tuple[Radiologist, list[int]]]:
    """Every radiologist with the sites they are credentialed for."""
    sites: dict[int, list[int]] = {}
    for radiologist_id, site_id in session.execute(
            select(Credential.radiologist_id, Credential.site_id).order_by(Credential.site_id)):
        sites.setdefault(radiologist_id, []).append(site_id)
    return [(r, sites.get(r.id, [])) for r in
            session.scalars(select(Radiologist).order_by(Radiologist.name))]
