"""The hospital portal's one router: the list, the request form, then one exam's pages."""

from __future__ import annotations

from fastapi import APIRouter

from telerad.web.portal import exam, listing, request_form

router = APIRouter(include_in_schema=False)
router.include_router(listing.router)
router.include_router(request_form.router)
router.include_router(exam.router)
