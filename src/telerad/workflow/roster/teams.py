"""Who takes duty for which team. A team has no member list of its own: its members are the
radiologists the roster puts on its shifts."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from telerad.workflow.roster.models import Radiologist, ShiftRow
from telerad.workflow.sites.models import Contract, ContractTeam, Site


def team_members(session: Session) -> dict[int, list[str]]:
    """Team id -> names of the radiologists with at least one shift for it, by name."""
    members: dict[int, list[str]] = {}
    for team_id, name in session.execute(
            select(ShiftRow.team_id, Radiologist.name).distinct()
            .join(Radiologist, Radiologist.id == ShiftRow.radiologist_id)
            .order_by(Radiologist.name)):
        members.setdefault(team_id, []).append(name)
    return members


def team_contracts(session: Session) -> dict[int, list[tuple[str, str, int]]]:
    """Team id -> (site name, modality, place in the cascade) of the contracts naming it."""
    found: dict[int, list[tuple[str, str, int]]] = {}
    for team_id, site, modality, position in session.execute(
            select(ContractTeam.team_id, Site.name, Contract.modality, ContractTeam.position)
            .join(Contract, Contract.id == ContractTeam.contract_id)
            .join(Site, Site.id == Contract.site_id)
            .order_by(Site.name, Contract.modality)):
        found.setdefault(team_id, []).append((site, modality, position))
    return found
