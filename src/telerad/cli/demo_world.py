"""The example world of ``telerad demo``: two hospitals and their contracts, a provider team
and a regional team in cascade, six radiologists, a roster of the current and the next week,
and an account for every role.

It is built through the same services as the API and the CLI, once per data directory, and
completed at each later start (the roster extended to the current week); nothing is ever
duplicated. The data directory carries a marker file: the demo refuses to add accounts with a
published password to a telerad it did not create, and ``telerad demo-code`` refuses to print
second-factor codes outside of one.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from zoneinfo import ZoneInfo

import pyotp
from sqlalchemy import select
from sqlalchemy.orm import Session

from telerad.auth.models import Role, User
from telerad.auth.second_factor import REQUIRED_FOR, enrol_secret
from telerad.auth.users import create_user, hash_password
from telerad.cli.common import open_runtime
from telerad.db import transaction
from telerad.errors import InvalidInput
from telerad.runtime import Runtime
from telerad.workflow.roster.models import Radiologist, ShiftRow
from telerad.workflow.roster.rules import HolidayCalendar, is_covered_time
from telerad.workflow.roster.service import add_radiologist
from telerad.workflow.sites.contracts import add_contract, add_team, coverage, parse_window
from telerad.workflow.sites.models import Contract, Site, Team, TeamKind
from telerad.workflow.sites.service import add_site

PARIS = ZoneInfo("Europe/Paris")
#: The one password of every example account: printed on purpose, never for real use.
PASSWORD = "telerad-demo-password"  # noqa: S105
#: Written in a data directory ``telerad demo`` created.
MARKER = "telerad-demo.json"


@dataclass(frozen=True, kw_only=True)
class DemoSite:
    key: str
    name: str
    #: The CT scanner's calling AE title: the one the stream sends from.
    ct_ae_title: str
    other_ae_titles: tuple[str, ...] = ()


SITES = (
    DemoSite(key="carcassonne", name="CH Carcassonne", ct_ae_title="CT_CARCA",
             other_ae_titles=("MR_CARCA",)),
    DemoSite(key="narbonne", name="CH Narbonne", ct_ae_title="CT_NARBO"),
)
PROVIDER, REGION = "RadioGarde", "Réseau Occitanie"
TEAMS = ((PROVIDER, TeamKind.PROVIDER), (REGION, TeamKind.REGION))
NIGHTS, DAYS = "every 18:30-08:00", "every 08:00-18:30"
#: (site key, modality, coverage window): CT read remotely every night at both hospitals,
#: MRI every day at Carcassonne (PRODUCT.md: "a second circuit sends MRI exams during the
#: day"); the provider first, the regional network second.
CONTRACTS = (("carcassonne", "CT", NIGHTS), ("narbonne", "CT", NIGHTS),
             ("carcassonne", "MR", DAYS))


class Period(StrEnum):
    """When a radiologist of the example roster is on duty."""

    NIGHT = "night"
    """Every night: the CT contracts."""
    DAY = "day"
    """Every day: the MRI contract."""


#: Local (start, end) of each period's shifts. They run half an hour beyond the coverage on
#: each side, as handovers do: whoever is on duty at 07:59 or 18:29 is still on a minute later.
SHIFT_HOURS = {Period.NIGHT: (dt.time(18, 0), dt.time(8, 30)),
               Period.DAY: (dt.time(7, 30), dt.time(19, 0))}
PERIOD_TEXT = {Period.NIGHT: "nights 18:00-08:30 (CT)", Period.DAY: "days 07:30-19:00 (MRI)"}


@dataclass(frozen=True, kw_only=True)
class DemoRadiologist:
    username: str
    name: str
    sites: tuple[str, ...]
    subspecialties: tuple[str, ...]
    team: str
    period: Period
    backup: bool = False
    #: The account a newcomer signs in with: the simulated colleagues leave them work.
    you: bool = False


RADIOLOGISTS = (
    DemoRadiologist(username="dr.martin", name="Dr Alice Martin", sites=("carcassonne",
                    "narbonne"), subspecialties=("neuro",), team=PROVIDER, period=Period.NIGHT,
                    you=True),
    DemoRadiologist(username="dr.blanc", name="Dr Emma Blanc", sites=("carcassonne",
                    "narbonne"), subspecialties=("neuro", "msk"), team=PROVIDER,
                    period=Period.DAY, you=True),
    DemoRadiologist(username="dr.petit", name="Dr Bruno Petit", sites=("carcassonne",
                    "narbonne"), subspecialties=("neuro",), team=PROVIDER, period=Period.NIGHT,
                    backup=True),
    DemoRadiologist(username="dr.roux", name="Dr Chloé Roux", sites=("carcassonne",
                    "narbonne"), subspecialties=(), team=REGION, period=Period.NIGHT),
    DemoRadiologist(username="dr.lefevre", name="Dr David Lefèvre", sites=("carcassonne",),
                    subspecialties=("msk",), team=PROVIDER, period=Period.DAY, backup=True),
    DemoRadiologist(username="dr.benali", name="Dr Farid Benali", sites=("carcassonne",
                    "narbonne"), subspecialties=("neuro",), team=REGION, period=Period.DAY),
)


@dataclass(frozen=True, kw_only=True)
class DemoAccount:
    username: str
    display_name: str
    role: Role
    sites: tuple[str, ...] = ()


#: Everyone but the radiologists, in the order the sign-ins are printed.
STAFF = (
    DemoAccount(username="urgences.carcassonne", display_name="Dr Hélène Garnier",
                role=Role.REQUESTING_PHYSICIAN, sites=("carcassonne",)),
    DemoAccount(username="manip.carcassonne", display_name="Julie Fabre",
                role=Role.TECHNOLOGIST, sites=("carcassonne",)),
    DemoAccount(username="urgences.narbonne", display_name="Dr Karim Haddad",
                role=Role.REQUESTING_PHYSICIAN, sites=("narbonne",)),
    DemoAccount(username="manip.narbonne", display_name="Lucas Vidal",
                role=Role.TECHNOLOGIST, sites=("narbonne",)),
    DemoAccount(username="cadre.carcassonne", display_name="Nathalie Bonnet",
                role=Role.SITE_MANAGER, sites=("carcassonne",)),
    DemoAccount(username="coordination", display_name="Sophie Marchand",
                role=Role.COORDINATOR, sites=("carcassonne", "narbonne")),
    DemoAccount(username="pr.duval", display_name="Pr Hélène Duval (neuroradiology)",
                role=Role.EXPERT),
    DemoAccount(username="admin", display_name="Platform administrator", role=Role.ADMIN),
)


# -- the data directory ---------------------------------------------------------------------

def claim_data_dir(data_dir: Path, *, now: dt.datetime) -> bool:
    """Make ``data_dir`` a demo directory if it is new or empty; True if it was. Refuses a
    folder holding anything else: the demo publishes its accounts' password."""
    marker = data_dir / MARKER
    if marker.exists():
        return False
    if data_dir.exists() and any(data_dir.iterdir()):
        raise InvalidInput(
            f"{data_dir} is not a folder `telerad demo` created (no {MARKER} in it): the demo "
            "adds accounts whose password it prints, so it only runs in a new or empty "
            "folder; choose another --data-dir")
    data_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({
        "created_by": "telerad demo", "created_at": now.isoformat(),
        "note": "example hospitals and accounts with a published password: not for patients",
    }, indent=2) + "\n", encoding="utf-8")
    return True


def require_demo_dir(data_dir: Path) -> None:
    if not (data_dir / MARKER).is_file():
        raise InvalidInput(f"{data_dir} was not created by `telerad demo` (no {MARKER} in it): "
                           "codes are only printed for the demo's example accounts")


def open_demo_runtime(data_dir: Path) -> Runtime:
    """The runtime of a demo folder: always the embedded default, whatever
    TELERAD_DATABASE_URL says, since the accounts' password is published and they must never
    land in a shared database."""
    database = data_dir.resolve() / "telerad.sqlite3"
    return open_runtime(data_dir, database_url=f"sqlite:///{database}")


def demo_code(data_dir: Path, username: str) -> tuple[str, int]:
    """The current second-factor code of an example account of the demo folder ``data_dir``,
    and the seconds it has left."""
    require_demo_dir(data_dir)
    runtime = open_demo_runtime(data_dir)
    try:
        with transaction(runtime.sessions, readonly=True) as session:
            return current_code(session, username, now=runtime.clock.now())
    finally:
        runtime.close()


# -- the roster -----------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class PlannedShift:
    username: str
    team: str
    start: dt.datetime
    end: dt.datetime
    backup: bool


def roster_days(now: dt.datetime, zone: ZoneInfo = PARIS) -> tuple[dt.date, dt.date]:
    """The local days whose shifts the roster holds: the current week and the next, from
    the Sunday before (its night runs into Monday morning)."""
    today = now.astimezone(zone).date()
    monday = today - dt.timedelta(days=today.weekday())
    return monday - dt.timedelta(days=1), monday + dt.timedelta(days=13)


def plan_shifts(first: dt.date, last: dt.date, *, zone: ZoneInfo = PARIS,
                radiologists: tuple[DemoRadiologist, ...] = RADIOLOGISTS) -> list[PlannedShift]:
    """Each radiologist's shift of their period on every local day from ``first`` to
    ``last``; a night ends the next morning. Wall-clock times in ``zone``, so a night across
    a daylight-saving change lasts what it really lasts."""
    planned = []
    day = first
    while day <= last:
        for person in radiologists:
            opens, closes = SHIFT_HOURS[person.period]
            end_day = day if closes > opens else day + dt.timedelta(days=1)
            planned.append(PlannedShift(
                username=person.username, team=person.team, backup=person.backup,
                start=dt.datetime.combine(day, opens, tzinfo=zone).astimezone(dt.UTC),
                end=dt.datetime.combine(end_day, closes, tzinfo=zone).astimezone(dt.UTC)))
        day += dt.timedelta(days=1)
    return planned


# -- building it ----------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class Built:
    """What one start added."""

    created: list[str]
    shifts_added: int


def _user(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


@functools.cache
def _password_hash() -> str:
    """The demo's one password, hashed once for all its accounts."""
    return hash_password(PASSWORD)


def _account(session: Session, *, username: str, display_name: str, role: Role,
             site_ids: list[int], now: dt.datetime) -> tuple[User, bool]:
    user = _user(session, username)
    if user is not None:
        return user, False
    user = create_user(session, username=username, display_name=display_name, role=role,
                       password=PASSWORD, password_hash=_password_hash(), site_ids=site_ids,
                       now=now)
    if role in REQUIRED_FOR:
        # A fresh secret per account and per data directory: printed with the sign-ins,
        # and what `telerad demo-code` computes the current code from.
        enrol_secret(user, secret=pyotp.random_base32(), now=now)
    return user, True


def build(session: Session, *, now: dt.datetime) -> Built:
    """Create what is missing of the example world, and extend the roster to cover the
    current week and the next (in the caller's transaction)."""
    created: list[str] = []
    site_ids: dict[str, int] = {}
    for spec in SITES:
        site = session.scalar(select(Site).where(Site.name == spec.name))
        if site is None:
            site = add_site(session, name=spec.name, now=now, timezone=PARIS.key,
                            ae_titles=[spec.ct_ae_title, *spec.other_ae_titles])
            created.append(f"site {spec.name}")
        site_ids[spec.key] = site.id
    team_ids: dict[str, int] = {}
    for name, kind in TEAMS:
        team = session.scalar(select(Team).where(Team.name == name))
        if team is None:
            team = add_team(session, name=name, kind=kind)
            created.append(f"team {name}")
        team_ids[name] = team.id
    for key, modality, window in CONTRACTS:
        if session.scalar(select(Contract.id).where(Contract.site_id == site_ids[key],
                                                    Contract.modality == modality)) is None:
            add_contract(session, site_id=site_ids[key], modality=modality, now=now,
                         windows=[parse_window(window)], team_names=[PROVIDER, REGION])
            created.append(f"contract {modality} {window} at {key}")
    for account in STAFF:
        _user_row, new = _account(session, username=account.username, now=now,
                                  display_name=account.display_name, role=account.role,
                                  site_ids=[site_ids[s] for s in account.sites])
        if new:
            created.append(f"account {account.username}")
    radiologist_ids: dict[str, int] = {}
    for person in RADIOLOGISTS:
        user, new = _account(session, username=person.username, display_name=person.name,
                             role=Role.RADIOLOGIST, site_ids=[], now=now)
        radiologist = session.scalar(select(Radiologist).where(Radiologist.user_id == user.id))
        if radiologist is None:
            radiologist = add_radiologist(
                session, name=person.name, username=person.username, now=now,
                site_ids=[site_ids[s] for s in person.sites],
                subspecialties=list(person.subspecialties))
        if new:
            created.append(f"radiologist {person.username}")
        radiologist_ids[person.username] = radiologist.id
    return Built(created=created,
                 shifts_added=_extend_roster(session, radiologist_ids, team_ids, now=now))


def _extend_roster(session: Session, radiologist_ids: dict[str, int], team_ids: dict[str, int],
                   *, now: dt.datetime) -> int:
    """Add the planned shifts not yet on the roster (same radiologist, same start)."""
    first, last = roster_days(now)
    planned = plan_shifts(first, last)
    if not planned:
        return 0
    have = {(r.radiologist_id, r.starts_at) for r in session.scalars(
        select(ShiftRow).where(ShiftRow.radiologist_id.in_(radiologist_ids.values()),
                               ShiftRow.starts_at >= min(p.start for p in planned),
                               ShiftRow.starts_at <= max(p.start for p in planned)))}
    rows = [ShiftRow(radiologist_id=radiologist_ids[p.username], team_id=team_ids[p.team],
                     starts_at=p.start, ends_at=p.end, backup=p.backup)
            for p in planned if (radiologist_ids[p.username], p.start) not in have]
    session.add_all(rows)
    session.flush()
    return len(rows)


# -- reading it back ------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class SignIn:
    """One example account as the sign-ins table shows it."""

    role: Role
    username: str
    display_name: str
    where: str
    totp_secret: str | None


def sign_ins(session: Session) -> list[SignIn]:
    """Every example account, staff first then radiologists, with its second-factor secret."""
    names = {s.key: s.name for s in SITES}
    rows: list[SignIn] = []
    for account in STAFF:
        user = _user(session, account.username)
        if user is not None:
            where = ", ".join(names[s] for s in account.sites) or "all sites"
            rows.append(SignIn(role=account.role, username=user.username, where=where,
                               display_name=user.display_name, totp_secret=_secret(user)))
    for person in RADIOLOGISTS:
        user = _user(session, person.username)
        if user is not None:
            duty = f"{PERIOD_TEXT[person.period]}, {person.team}" + (
                " back-up" if person.backup else "")
            rows.append(SignIn(role=Role.RADIOLOGIST, username=user.username, where=duty,
                               display_name=user.display_name, totp_secret=_secret(user)))
    return rows


def _secret(user: User) -> str | None:
    return user.totp_secret if user.totp_enabled_at is not None else None


def on_duty_now(session: Session, *, now: dt.datetime) -> list[tuple[str, str, dt.datetime]]:
    """(username, name, end of shift) of the newcomer's radiologist accounts on a primary
    shift now, the one staying longest first."""
    mine = {p.username for p in RADIOLOGISTS if p.you}
    found = session.execute(
        select(User.username, Radiologist.name, ShiftRow.ends_at)
        .join(Radiologist, Radiologist.user_id == User.id)
        .join(ShiftRow, ShiftRow.radiologist_id == Radiologist.id)
        .where(User.username.in_(mine), ShiftRow.starts_at <= now, ShiftRow.ends_at > now,
               ShiftRow.backup.is_(False)))
    return sorted(((u, n, e) for u, n, e in found), key=lambda row: row[2], reverse=True)


@dataclass(frozen=True, kw_only=True)
class Covered:
    """A site and modality whose contract covers now."""

    site_id: int
    site_name: str
    modality: str


def covered(session: Session, now: dt.datetime, *, site_ids: set[int],
            holidays: HolidayCalendar) -> list[Covered]:
    """The sites' modalities whose contract covers ``now``."""
    found = []
    for contract, site in session.execute(
            select(Contract, Site).join(Site, Site.id == Contract.site_id)
            .where(Site.id.in_(site_ids)).order_by(Site.id, Contract.modality)):
        if is_covered_time(coverage(contract), now, zone=ZoneInfo(site.timezone),
                           is_holiday=holidays):
            found.append(Covered(site_id=site.id, site_name=site.name,
                                 modality=contract.modality))
    return found


def current_code(session: Session, username: str, *, now: dt.datetime) -> tuple[str, int]:
    """The code the account's authenticator app shows at ``now``, and the seconds it has left."""
    user = _user(session, username.strip().lower())
    if user is None:
        raise InvalidInput(f"no account named {username!r} in this demo")
    secret = _secret(user)
    if secret is None:
        raise InvalidInput(f"{user.username} signs in without a second factor: the password "
                           "is enough")
    totp = pyotp.TOTP(secret)
    return totp.at(now), totp.interval - int(now.timestamp()) % totp.interval
