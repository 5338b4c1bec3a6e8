"""A site's endpoints: the RIS and PACS its reports are delivered to."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from telerad.delivery.models import ChannelKind, Delivery, Endpoint
from telerad.errors import InvalidInput, NotFound
from telerad.workflow.sites.models import Site

#: AE title: up to 16 characters of the Default Character Repertoire, no backslash nor
#: control characters (PS3.5 §6.2, VR AE); leading and trailing spaces are not significant.
_AE_TITLE = re.compile(r"^[ -\[\]-~]{1,16}$")


def add_endpoint(session: Session, *, site_id: int, channel: str, name: str, host: str,
                 port: int, called_ae_title: str = "", receiving_application: str = "",
                 receiving_facility: str = "", now: dt.datetime) -> Endpoint:
    """Add where a site's reports go; every problem is named at once."""
    if session.get(Site, site_id) is None:
        raise NotFound(f"no site #{site_id}")
    problems = []
    if channel not in set(ChannelKind):
        problems.append(f"channel must be one of {', '.join(ChannelKind)}")
    if not name.strip():
        problems.append("name the endpoint")
    if not host.strip() or len(host) > 255 or any(c.isspace() for c in host.strip()):
        problems.append("host is a name or an address")
    if not 0 < port < 65536:
        problems.append("port is between 1 and 65535")
    if channel == ChannelKind.DICOM_STORE and not _AE_TITLE.match(called_ae_title.strip()):
        problems.append("a PACS needs its AE title (1 to 16 characters)")
    if len(receiving_application) > 64 or len(receiving_facility) > 64:
        problems.append("the receiving application and facility have at most 64 characters")
    if problems:
        raise InvalidInput("; ".join(problems))
    endpoint = Endpoint(site_id=site_id, channel=channel, name=name.strip(), host=host.strip(),
                        port=port, called_ae_title=called_ae_title.strip(),
                        receiving_application=receiving_application.strip(),
                        receiving_facility=receiving_facility.strip(), enabled=True,
                        created_at=now)
    session.add(endpoint)
    session.flush()
    return endpoint


def endpoints_of(session: Session, *, site_ids: frozenset[int] | None) -> list[Endpoint]:
    query = select(Endpoint).order_by(Endpoint.site_id, Endpoint.id)
    if site_ids is not None:
        query = query.where(Endpoint.site_id.in_(sorted(site_ids)))
    return list(session.scalars(query))


def get_delivery(session: Session, *, delivery_id: int, site_ids: frozenset[int] | None
                 ) -> Delivery:
    """A delivery of one of ``site_ids``' exams, else NotFound (never another site's)."""
    row = session.get(Delivery, delivery_id)
    endpoint = session.get(Endpoint, row.endpoint_id) if row is not None else None
    if row is None or endpoint is None or (
            site_ids is not None and endpoint.site_id not in site_ids):
        raise NotFound(f"no delivery #{delivery_id}")
    return row
