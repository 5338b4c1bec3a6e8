"""The administration's one router: its overview page, then each section's pages in the
order of the menu."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from telerad.web.admin import audit, deliveries, people, roster, setup, templates_pages, users
from telerad.web.admin.common import ANY, page
from telerad.web.pages import page_actor

router = APIRouter(include_in_schema=False)


@router.get("/admin", response_class=HTMLResponse)
def overview(request: Request) -> Response:
    who = page_actor(request, ANY)
    return page(request, "admin.html", "administration", who)


router.include_router(setup.router)
router.include_router(templates_pages.router)
router.include_router(deliveries.router)
router.include_router(people.router)
router.include_router(roster.router)
router.include_router(users.router)
router.include_router(audit.router)
