"""Creating sites and resolving a sender to its site."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from telerad.errors import Conflict, InvalidInput, NotFound
from telerad.workflow.sites.models import Device, Site

# PS3.5 §6.2 (AE VR): 16 characters of the default repertoire, no backslash or control.
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")


def normalise_ae_title(ae_title: str) -> str:
    """An AE title as compared: leading and trailing spaces are not significant (PS3.5 §6.2)."""
    value = ae_title.strip()
    if not _AE_TITLE.match(value):
        raise InvalidInput(f"invalid AE title {ae_title!r}: 1 to 16 printable characters")
    return value


def add_site(
    session: Session, *, name: str, ae_titles: list[str], now: dt.datetime,
    timezone: str = "Europe/Paris",
) -> Site:
    """A new site and the AE titles of its senders."""
    name = name.strip()
    if not name:
        raise InvalidInput("a site needs a name")
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {timezone!r}") from exc
    if session.scalar(select(Site.id).where(Site.name == name)) is not None:
        raise Conflict(f"a site named {name!r} already exists")
    site = Site(name=name, timezone=timezone, created_at=now)
    session.add(site)
    session.flush()
    for ae_title in ae_titles:
        add_device(session, site=site, ae_title=ae_title, now=now)
    return site


def add_device(session: Session, *, site: Site, ae_title: str, now: dt.datetime) -> Device:
    """Let ``ae_title`` send to telerad on behalf of ``site``."""
    value = normalise_ae_title(ae_title)
    owner = session.scalar(select(Device).where(Device.ae_title == value))
    if owner is not None:
        raise Conflict(f"AE title {value!r} already belongs to site #{owner.site_id}")
    device = Device(site_id=site.id, ae_title=value, created_at=now)
    session.add(device)
    session.flush()
    return device


def site_for_ae_title(session: Session, ae_title: str) -> Site | None:
    """The site a calling AE title sends for, or None if it belongs to no site."""
    try:
        value = normalise_ae_title(ae_title)
    except InvalidInput:
        return None
    return session.scalar(select(Site).join(Device).where(Device.ae_title == value))


def site_by_name(session: Session, name: str) -> Site:
    """The site called ``name``."""
    site = session.scalar(select(Site).where(Site.name == name.strip()))
    if site is None:
        raise NotFound(f"no site named {name!r}")
    return site


def list_sites(session: Session) -> list[Site]:
    return list(session.scalars(select(Site).order_by(Site.id)))


#: HL7 v2.5 §2.A.33 (HD): the namespace ID is an IS of at most 20 characters; the delimiters
#: of §2.5.4 (| ^ ~ \ &) cannot appear in a component.
_HL7_FACILITY = re.compile(r"^[\x21-\x7e]+(?: [\x21-\x7e]+)*$")
_HL7_DELIMITERS = frozenset("|^~\\&")
#: An on-call phone number as it is dialled: digits, spaces, "+", ".", "-", parentheses.
_PHONE = re.compile(r"^[0-9+ ().-]*$")
MAX_CRITICAL_ACK_MINUTES = 240


def update_reporting_settings(session: Session, *, site_id: int, hl7_facility: str,
                              critical_ack_minutes: int, on_call_manager: str,
                              on_call_phone: str) -> Site:
    """Set what a site's reports and critical findings depend on: the MSH-4 Sending
    Facility of its RIS's orders ("" for none; unique, since it names the site an order is
    filed for), the minutes it has to acknowledge a critical finding (1 to 240), and the
    on-call manager called when one stays unacknowledged (name and phone go together).
    Every problem is named at once; a facility of another site is a Conflict."""
    site = session.get(Site, site_id)
    if site is None:
        raise NotFound(f"no site #{site_id}")
    facility = hl7_facility.strip()
    manager, phone = on_call_manager.strip(), on_call_phone.strip()
    problems = []
    if facility and (len(facility) > 20 or not _HL7_FACILITY.match(facility)
                     or _HL7_DELIMITERS & set(facility)):
        problems.append("the HL7 facility has 1 to 20 printable characters, without "
                        "| ^ ~ \\ &")
    if not 1 <= critical_ack_minutes <= MAX_CRITICAL_ACK_MINUTES:
        problems.append(f"the critical acknowledgement time is 1 to "
                        f"{MAX_CRITICAL_ACK_MINUTES} minutes")
    if len(manager) > 200:
        problems.append("the on-call manager has at most 200 characters")
    if len(phone) > 40 or not _PHONE.match(phone) or (phone and not any(
            c.isdigit() for c in phone)):
        problems.append("the on-call phone is a number of at most 40 digits, spaces, "
                        "+ . - ( )")
    if bool(manager) != bool(phone):
        problems.append("the on-call manager's name and phone go together")
    if problems:
        raise InvalidInput("; ".join(problems))
    if facility:
        owner = session.scalar(select(Site.id).where(Site.hl7_facility == facility,
                                                     Site.id != site.id))
        if owner is not None:
            raise Conflict(f"HL7 facility {facility!r} already belongs to site #{owner}")
    site.hl7_facility = facility or None
    site.critical_ack_minutes = critical_ack_minutes
    site.on_call_manager = manager
    site.on_call_phone = phone
    session.flush()
    return site
