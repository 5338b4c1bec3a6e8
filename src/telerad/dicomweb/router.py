"""DICOMweb (PS3.18): QIDO-RS, WADO-RS and STOW-RS under /dicomweb, bearer-token authenticated.

Every route depends on :func:`telerad.httpauth.current_actor`, checks the actor's
permission, and reaches patient data only through the actor's Scope
(:mod:`telerad.archive.queries`). Domain errors become HTTP statuses in ``web.app``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from telerad.auth.service import Actor, Permission
from telerad.dicomweb import qido, stow, wado
from telerad.dicomweb.common import ROOT_ROUTE
from telerad.httpauth import current_actor

router = APIRouter(tags=["dicomweb"])


@router.get("/", name=ROOT_ROUTE)
def service_root(actor: Annotated[Actor, Depends(current_actor)]) -> dict[str, object]:
    """What this DICOMweb service offers (its URL is the base of every RetrieveURL)."""
    actor.scope.require(Permission.ARCHIVE_READ)
    return {
        "services": ["QIDO-RS", "WADO-RS", "STOW-RS"],
        "standard": "DICOM PS3.18",
    }


router.include_router(qido.router)
router.include_router(wado.router)
router.include_router(stow.router)
