"""The diagnostic viewer: OHIF's built application served under ``/viewer/``, configured
for telerad's DICOMweb with the user's session."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
