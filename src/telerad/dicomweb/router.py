"""DICOMweb (PS3.18): QIDO-RS, WADO-RS and STOW-RS under /dicomweb. Placeholder router."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["dicomweb"])
