"""Removing a site's sender (adding one is ``service.add_device``): the AE title is refused
at its next association, and may then be given to another site."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from telerad.errors import NotFound
from telerad.workflow.sites.models import Device


def remove_device(session: Session, *, site_id: int, device_id: int) -> str:
    """Stop accepting the device's AE title for the site; the AE title it had. Studies it
    sent stay the site's (they name the site, not the device)."""
    device = session.scalar(select(Device).where(Device.id == device_id,
                                                 Device.site_id == site_id))
    if device is None:
        raise NotFound(f"no device #{device_id} at site #{site_id}")
    ae_title = device.ae_title
    session.delete(device)
    session.flush()
    return ae_title
