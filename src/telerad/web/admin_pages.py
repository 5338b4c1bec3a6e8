"""Administration pages (coordinator, site manager, admin): sites, devices, contracts,
teams, radiologists, the roster's week, users, the audit trail."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
