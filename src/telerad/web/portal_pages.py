"""The hospital portal (requesting physician, technologist): file a request, follow
exams, mark them done, reconcile unmatched studies."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
