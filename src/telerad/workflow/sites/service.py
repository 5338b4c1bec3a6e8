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
