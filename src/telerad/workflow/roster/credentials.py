"""Changing a radiologist's credentials (the sites they may read for) and subspecialties.

As when the radiologist was added (``service.add_radiologist``), a linked account's sites
follow the credentials: the account then sees the patients of exactly those sites.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from telerad.auth.models import UserSite
from telerad.errors import InvalidInput, NotFound
from telerad.workflow.roster.models import Credential, Radiologist
from telerad.workflow.sites.models import Site


def set_credentials(session: Session, *, radiologist_id: int, site_ids: list[int],
                    subspecialties: list[str]) -> Radiologist:
    """Credential the radiologist for exactly ``site_ids``, with ``subspecialties``."""
    radiologist = session.get(Radiologist, radiologist_id)
    if radiologist is None:
        raise NotFound(f"no radiologist #{radiologist_id}")
    wanted = sorted(set(site_ids))
    known = set(session.scalars(select(Site.id).where(Site.id.in_(wanted))))
    if unknown := [s for s in wanted if s not in known]:
        raise InvalidInput(f"no site #{unknown[0]}")
    radiologist.subspecialties = ",".join(sorted({s.strip().lower() for s in subspecialties
                                                  if s.strip()}))
    session.execute(delete(Credential).where(Credential.radiologist_id == radiologist_id))
    session.add_all(Credential(radiologist_id=radiologist_id, site_id=s) for s in wanted)
    if radiologist.user_id is not None:
        session.execute(delete(UserSite).where(UserSite.user_id == radiologist.user_id))
        session.add_all(UserSite(user_id=radiologist.user_id, site_id=s) for s in wanted)
    session.flush()
    return radiologist


def radiologist_of_account(session: Session, user_id: int) -> Radiologist | None:
    """The roster's radiologist signing in with this account, if any."""
    return session.scalar(select(Radiologist).where(Radiologist.user_id == user_id))
