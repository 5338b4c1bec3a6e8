"""The HTTP application: JSON API, DICOMweb, and (later) pages and the viewer.

Errors are translated here, once: every :class:`TeleradError` becomes its HTTP status with
a JSON body ``{"error": code, "message": ...}``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DBAPIError

from telerad import __version__
from telerad.dicomweb.router import router as dicomweb_router
from telerad.errors import NotAuthenticated, TeleradError
from telerad.runtime import Runtime
from telerad.web.admin.routes import router as admin_router
from telerad.web.api import router as api_router
from telerad.web.exams_api import router as exams_router
from telerad.web.pages import error_page
from telerad.web.pages import router as pages_router
from telerad.web.portal.routes import router as portal_router
from telerad.web.reading_pages import router as reading_router
from telerad.web.reports_api import router as reports_router
from telerad.web.roster_api import router as roster_router
from telerad.web.routing_api import router as routing_router
from telerad.web.viewer import router as viewer_router
from telerad.web.worklist_pages import router as worklist_router


def _is_page(request: Request) -> bool:
    """A page (or a page's fragment): anything but the API and DICOMweb."""
    return not request.url.path.startswith(("/api/", "/dicomweb/"))


def create_app(runtime: Runtime) -> FastAPI:
    """The ASGI application serving ``runtime``."""
    app = FastAPI(
        title="telerad",
        version=__version__,
        description="Teleradiology platform: archive (DICOMweb) and the JSON API of the reading "
                    "workflow (requests, exams, worklist, routing, roster).",
    )
    app.state.runtime = runtime

    @app.exception_handler(TeleradError)
    async def _telerad_error(request: Request, exc: TeleradError) -> Response:
        if _is_page(request):  # a person's browser: a page in their language
            return error_page(request, exc)
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, NotAuthenticated) else None
        return JSONResponse(
            {"error": exc.code, "message": exc.message}, status_code=exc.http_status,
            headers=headers,
        )

    @app.exception_handler(DBAPIError)
    async def _database_error(_request: Request, exc: DBAPIError) -> JSONResponse:
        if exc.connection_invalidated:  # the database restarted: the next try reconnects
            return JSONResponse({"error": "database_unavailable",
                                 "message": "the database connection was lost; retry"},
                                status_code=503, headers={"Retry-After": "1"})
        raise exc

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    app.include_router(pages_router)
    app.include_router(worklist_router)
    app.include_router(reading_router)
    app.include_router(portal_router)
    app.include_router(admin_router)
    app.include_router(viewer_router)
    app.include_router(api_router, prefix="/api")
    app.include_router(exams_router, prefix="/api")
    app.include_router(routing_router, prefix="/api")
    app.include_router(reports_router, prefix="/api")
    app.include_router(roster_router, prefix="/api")
    app.include_router(dicomweb_router, prefix="/dicomweb")
    return app
