"""Administration: the report templates (built-in and imported, the newest version of each
code) and importing one — JSON as the API lists them, or an IHE MRRT HTML template (IHE RAD
TF Suppl. MRRT §8.1.3). A template is all imported or not at all, every problem named."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile as StarletteUpload

from telerad.audit.service import Action
from telerad.errors import Conflict, InvalidInput
from telerad.reporting import catalogue
from telerad.reporting.catalogue import all_templates, import_template
from telerad.reporting.templates import InvalidTemplate, Template, builtin_templates
from telerad.web.admin.common import CONFIG, MANAGE, Signed, Text, changing, page, reading
from telerad.web.admin.common import redirect as redirect_to
from telerad.web.i18n import TEXTS, language
from telerad.web.pages import form_actor, page_actor
from telerad.web.reports_api import MAX_TEMPLATE_BYTES

router = APIRouter(include_in_schema=False)


def template_rows(session: Session) -> list[dict[str, Any]]:
    builtin = {(t.code, t.version) for t in builtin_templates()}
    return [{"code": t.code, "version": t.version, "title": t.title, "modality": t.modality,
             "protocols": list(t.protocols), "builtin": (t.code, t.version) in builtin}
            for t in all_templates(session)]


def templates_page(request: Request, who: Signed, **context: Any) -> HTMLResponse:
    with reading(request) as session:
        rows = template_rows(session)
    return page(request, "admin_templates.html", "admin_templates", who, rows=rows,
                max_kib=MAX_TEMPLATE_BYTES // 1024, **context)


@router.get("/admin/templates", response_class=HTMLResponse)
def templates(request: Request, notice: str = "", code: str = "", version: str = ""
              ) -> Response:
    who = page_actor(request, CONFIG)
    if notice == "admin_template_imported":
        # Only a template that exists is named: nothing from the URL is shown as it came.
        with reading(request) as session:
            known = {(str(r["code"]), str(r["version"])) for r in template_rows(session)}
        t = TEXTS[language(request)]
        text = (t["admin_template_imported"].format(code=code, version=version)
                if (code, version) in known else "")
        return templates_page(request, who, notice_text=text)
    return templates_page(request, who, notice=notice)


def read_template(session: Session, *, name: str, body: bytes, modality: str
                  ) -> tuple[Template, str]:
    """The template a file holds, and its format ("json" or "mrrt")."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("a template is UTF-8 text") from None
    mrrt = catalogue.is_mrrt(name=name, text=text)
    if not mrrt and not name.lower().endswith(".json") and text.lstrip()[:1] != "{":
        raise InvalidInput("a template is a .json file or an IHE MRRT .html file")
    return (catalogue.read_template(session, text, mrrt=mrrt, modality=modality),
            "mrrt" if mrrt else "json")


@router.post("/admin/templates", response_class=HTMLResponse)
def import_file(request: Request, csrf_token: Text = "",
                file: Annotated[UploadFile | str | None, File()] = None,
                modality: Text = "") -> Response:
    """Import one template file: all of it or nothing, every problem named beside the form."""
    who = form_actor(request, csrf_token, MANAGE)
    name = ""
    try:
        if not isinstance(file, StarletteUpload):  # none, or a text field of that name
            raise InvalidInput("choose a .json or MRRT .html template file")
        name = (file.filename or "")[:100]
        body = file.file.read(MAX_TEMPLATE_BYTES + 1)
        if len(body) > MAX_TEMPLATE_BYTES:
            raise InvalidInput(f"a template file is at most {MAX_TEMPLATE_BYTES // 1024} KiB")
        with changing(request, who[0], Action.CREATE, "report_template") as (
                session, now, detail):
            template, kind = read_template(session, name=name, body=body, modality=modality)
            import_template(session, template, now=now)
            detail.update(code=template.code, version=template.version, format=kind,
                          file=name)
    except (InvalidInput, Conflict) as exc:
        t = TEXTS[language(request)]
        problems = exc.problems if isinstance(exc, InvalidTemplate) else [exc.message]
        return templates_page(request, who, status_code=exc.http_status,
                              errors={"template": {"lead": t["admin_template_failed"],
                                                   "problems": problems}},
                              form={"modality": modality, "file": name})
    return redirect_to("/admin/templates", "admin_template_imported", code=template.code,
                       version=template.version)
