"""The radiologist's reading page, ``/exams/{id}/read``: the exam's images in OHIF beside
its clinical context, the report editor, the critical findings with their calls, and the
versions already signed.

The page is rendered here; what it changes goes through the reports API
(:mod:`telerad.web.reports_api`) from its script, ``static/read.js``: each keystroke is
first kept in the browser's storage, then the draft is sent with the revision it started
from, so a network blip loses nothing and a draft changed elsewhere is never overwritten.
``/exams/{id}/read/parts`` answers the parts that change under the page (signed versions,
critical findings and the hospital's acknowledgement), which the script fetches again.
"""

from __future__ import annotations

import datetime as dt
import json
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from telerad.audit.service import Action, who_for
from telerad.auth.service import Actor, Permission
from telerad.db import transaction
from telerad.httpauth import csrf_token, runtime_of, source_of
from telerad.reporting import catalogue, critical
from telerad.reporting import service as reports
from telerad.reporting.models import Report, ReportStatus
from telerad.reporting.templates import normal_content
from telerad.web.i18n import TEXTS, language
from telerad.web.pages import page_actor, render
from telerad.web.reports_api import pdf_url
from telerad.web.viewer import viewer_url
from telerad.workflow.assignments import service as assignments
from telerad.workflow.exams.models import Exam, ExamState
from telerad.workflow.exams.queries import get_exam
from telerad.workflow.sites.models import Site

router = APIRouter(include_in_schema=False)

#: The reading page is a radiologist's, as the worklist is.
READERS = frozenset({Permission.EXAMS_CLAIM})
#: The zone of a site that names none (telerad's sites are French).
DEFAULT_ZONE = "Europe/Paris"
#: How a datetime-local input writes a wall time (HTML §2.3.5.5, "local date and time").
WALL_TIME = "%Y-%m-%dT%H:%M"


class Mode(StrEnum):
    """What the reading page offers the person opening it."""

    WRITE = "write"
    """The exam's reader writes the report: draft, preliminary, final."""
    ADDENDUM = "addendum"
    """The final is signed: a radiologist of the site may sign an addendum."""
    CLAIM = "claim"
    """Ready, and nobody reads it yet: claim it first."""
    OTHER_READER = "other_reader"
    """Another radiologist reads it: its signed versions and critical findings only."""
    NOT_READY = "not_ready"
    """Not to be read (filed, acquiring, refused, cancelled...)."""


def mode_of(exam: Exam, *, radiologist_id: int, may_write: bool) -> Mode:
    """What the radiologist ``radiologist_id`` may do here (the API checks again)."""
    if exam.state in reports.SIGNED_STATES:
        return Mode.ADDENDUM if may_write else Mode.OTHER_READER
    if exam.state in reports.WRITING_STATES:
        mine = exam.reader_id == radiologist_id and may_write
        return Mode.WRITE if mine else Mode.OTHER_READER
    return Mode.CLAIM if exam.state == ExamState.READY else Mode.NOT_READY


def _local(at: dt.datetime | None, zone: str, fmt: str = "%H:%M") -> str:
    """An instant in the site's own time (the pages never show UTC)."""
    return "" if at is None else at.astimezone(ZoneInfo(zone)).strftime(fmt)


def _signer(name: str) -> str:
    """A DICOM PN (PS3.5 §6.2: FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX) as a signature reads:
    "Dr Alice MARTIN"."""
    family, given, middle, prefix, suffix = ([*name.split("^"), "", "", "", ""])[:5]
    return " ".join(p for p in (prefix, given, middle, family, suffix) if p.strip()) or "—"


def _birth_date(value: str) -> str:
    """DICOM DA (PS3.5 §6.2: YYYYMMDD) as French dates read."""
    return f"{value[6:8]}/{value[4:6]}/{value[:4]}" if len(value) == 8 else value


def _editor(session: Session, exam: Exam, report: Report | None, mode: Mode, *,
            chosen: str) -> dict[str, Any]:
    """The editor's template, values, revision and status. Before the report exists: the
    templates to choose from (the one for the protocol first chosen) and the normal
    findings; the script begins the report at the first keystroke, and the server's
    beginning (the request's indication...) fills every field not typed in."""
    editor: dict[str, Any] = {"template": None, "templates": [], "values": {}, "revision": 0,
                              "status": ReportStatus.DRAFT.value, "has_report": False}
    if report is not None:
        editor.update(values=reports.draft_of(report), revision=report.revision,
                      status=report.status, has_report=True)
        if mode is Mode.WRITE:
            editor["template"] = reports.template_of(report)
    elif mode is Mode.WRITE:
        templates = catalogue.all_templates(session)
        template = next((t for t in templates if t.code == chosen), None) or catalogue.choose(
            templates, exam)
        editor.update(templates=templates, template=template,
                      values=normal_content(template) if template is not None else {})
    return editor


def _parts(session: Session, exam: Exam, report: Report | None, *, zone: str,
           now: dt.datetime) -> dict[str, Any]:
    """The signed versions and the critical findings, as the page shows them."""
    versions = [] if report is None else [
        {"number": v.number, "kind": v.kind, "text": v.text, "signer": _signer(v.signer_name),
         "at": _local(v.signed_at, zone, "%d/%m/%Y %H:%M"), "pdf_url": pdf_url(exam.id, v.number)}
        for v in reversed(reports.versions(session, report))]
    findings = [
        {"id": f.id, "finding": f.finding, "declared_at": _local(f.created_at, zone),
         "acknowledged_at": _local(f.acknowledged_at, zone),
         "due_at": _local(f.ack_due_at, zone),
         "late": f.acknowledged_at is None and now > f.ack_due_at,
         "escalation_level": f.escalation_level,
         "calls": [{"person": c.called_person, "phone": c.phone, "said": c.said,
                    "at": _local(c.called_at, zone), "read_back": c.read_back}
                   for c in critical.calls_of(session, f)]}
        for f in critical.findings_of(session, exam)]
    return {"versions": versions, "findings": findings,
            "now_wall": _local(now, zone, WALL_TIME)}


def _reading(request: Request, actor: Actor, exam_id: int, *, chosen: str = ""
             ) -> tuple[Exam, dict[str, Any]]:
    """The exam (of the actor's sites, else 404) and what the page shows of it."""
    runtime = runtime_of(request)
    now = runtime.clock.now()
    with transaction(runtime.sessions, readonly=True) as session:
        exam = get_exam(session, scope=actor.scope, exam_id=exam_id)
        radiologist = assignments.radiologist_of(session, actor)
        mode = mode_of(exam, radiologist_id=radiologist.id,
                       may_write=Permission.REPORTS_WRITE in actor.scope.permissions)
        site = session.get(Site, exam.site_id)
        zone = site.timezone if site is not None and site.timezone else DEFAULT_ZONE
        report = reports.report_of(session, exam)
        context = {"exam": exam, "mode": mode.value, "zone": zone, "now": now,
                   **_editor(session, exam, report, mode, chosen=chosen),
                   **_parts(session, exam, report, zone=zone, now=now)}
        session.expunge(exam)
    return exam, context


def _audit(request: Request, actor: Actor, exam: Exam, route: str) -> None:
    runtime_of(request).audit(who_for(actor, source_of(request)), Action.READ,
                              study_instance_uid=exam.study_instance_uid or "",
                              detail={"route": route, "exam_id": exam.id})


def _contraindications(exam: Exam) -> str:
    return ", ".join(f"{k}: {v}" for k, v in json.loads(exam.contraindications or "{}").items())


#: Notices the page shows after the script reloads it (``?notice=``).
NOTICES = {"final": "read_final_signed"}


@router.get("/exams/{exam_id}/read", response_class=HTMLResponse)
def reading_page(request: Request, exam_id: int, template: str = "", notice: str = ""
                 ) -> Response:
    """The reading page; ``template`` names another template before the report begins."""
    actor, token = page_actor(request, READERS)
    exam, context = _reading(request, actor, exam_id, chosen=template[:64])
    t = TEXTS[language(request)]
    writing = context["mode"] in (Mode.WRITE, Mode.ADDENDUM)
    page = render(request, "read.html", "read_title", actor=actor, csrf=csrf_token(token),
                  contraindications=_contraindications(exam), birth_date=_birth_date(
                      exam.patient_birth_date),
                  viewer_url=viewer_url(exam.study_instance_uid) if writing else "",
                  notice=t.get(NOTICES.get(notice, ""), ""),
                  js_texts={k: v for k, v in t.items() if k.startswith("read_")}, **context)
    _audit(request, actor, exam, "exams/{id}/read")
    return page


@router.get("/exams/{exam_id}/read/parts", response_class=HTMLResponse)
def reading_parts(request: Request, exam_id: int) -> Response:
    """The page's parts that change under it: signed versions, critical findings."""
    actor, token = page_actor(request, READERS, fragment=True)
    exam, context = _reading(request, actor, exam_id)
    page = render(request, "read_parts.html", "read_title", csrf=csrf_token(token), **context)
    _audit(request, actor, exam, "exams/{id}/read/parts")
    return page
