"""JSON API of reports: write from a template, save drafts, release and sign, addenda, the
PDF; critical findings, their calls and the hospital's acknowledgement; report templates.

Every route is scoped (another site's exam answers 404) and audited; a change and its audit
event share one transaction, and a release wakes the delivery worker after its commit.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from telerad.audit.service import Action, who_for
from telerad.auth.service import Actor, Permission
from telerad.db import transaction
from telerad.errors import InvalidInput, NotFound
from telerad.httpauth import current_actor, runtime_of, source_of
from telerad.reporting import catalogue, critical
from telerad.reporting import service as reports
from telerad.reporting.models import CriticalFinding, Report, VersionKind
from telerad.reporting.templates import template_json
from telerad.web.exams_api import changing_exam
from telerad.workflow.assignments import service as assignments
from telerad.workflow.exams.models import Exam
from telerad.workflow.exams.queries import get_exam

router = APIRouter(tags=["reports"])
CurrentActor = Annotated[Actor, Depends(current_actor)]


class VersionOut(BaseModel):
    number: int
    kind: VersionKind
    text: str
    signer_name: str
    signed_at: dt.datetime
    content_sha256: str
    pdf_url: str


class ReportOut(BaseModel):
    """A report: its template, its draft (and revision), its signed versions."""

    exam_id: int
    status: str
    template: dict[str, Any]
    draft: dict[str, str]
    revision: int
    versions: list[VersionOut]


class DraftIn(BaseModel):
    content: dict[str, str]
    base_revision: int


class ReleaseIn(BaseModel):
    kind: VersionKind


class CallIn(BaseModel):
    called_person: str = Field(max_length=200)
    phone: str = Field(max_length=40)
    called_at: dt.datetime
    said: str = Field(max_length=5000)
    read_back: bool


class FindingIn(BaseModel):
    finding: str = Field(max_length=5000)
    call: CallIn


class AcknowledgeIn(BaseModel):
    note: str = Field(default="", max_length=2000)


class CallOut(CallIn):
    recorded_at: dt.datetime


class FindingOut(BaseModel):
    id: int
    exam_id: int
    finding: str
    created_at: dt.datetime
    ack_due_at: dt.datetime
    acknowledged_at: dt.datetime | None
    escalation_level: int
    calls: list[CallOut]


def pdf_url(exam_id: int, number: int) -> str:
    return f"/api/exams/{exam_id}/report/versions/{number}/pdf"


def report_out(session: Session, report: Report) -> ReportOut:
    return ReportOut(
        exam_id=report.exam_id, status=report.status, template=json.loads(report.template),
        draft=reports.draft_of(report), revision=report.revision,
        versions=[VersionOut(number=v.number, kind=VersionKind(v.kind), text=v.text,
                             signer_name=v.signer_name, signed_at=v.signed_at,
                             content_sha256=v.content_sha256,
                             pdf_url=pdf_url(report.exam_id, v.number))
                  for v in reports.versions(session, report)])


def finding_out(session: Session, finding: CriticalFinding) -> FindingOut:
    return FindingOut(
        id=finding.id, exam_id=finding.exam_id, finding=finding.finding,
        created_at=finding.created_at, ack_due_at=finding.ack_due_at,
        acknowledged_at=finding.acknowledged_at, escalation_level=finding.escalation_level,
        calls=[CallOut(called_person=c.called_person, phone=c.phone, called_at=c.called_at,
                       said=c.said, read_back=c.read_back, recorded_at=c.recorded_at)
               for c in critical.calls_of(session, finding)])


@contextmanager
def _reading(request: Request, actor: Actor, exam_id: int, *, what: str,
             action: Action = Action.READ) -> Iterator[tuple[Session, Exam]]:
    """A read of one exam the actor may see, audited once it succeeded (repeated reads of a
    study within a minute folded into one event, as every read of patient data)."""
    actor.scope.require(Permission.EXAMS_READ)
    runtime = runtime_of(request)
    with transaction(runtime.sessions, readonly=True) as session:
        exam = get_exam(session, scope=actor.scope, exam_id=exam_id)
        yield session, exam
        study_instance_uid = exam.study_instance_uid or ""
    runtime.audit(who_for(actor, source_of(request)), action,
                  study_instance_uid=study_instance_uid,
                  detail={"exam_id": exam_id, "what": what})


def _changing(request: Request, actor: Actor, exam_id: int, *, permission: Permission,
              what: str) -> AbstractContextManager[tuple[Session, Exam, dt.datetime]]:
    """A change of the exam's report or findings: the exam stays locked until the commit."""
    return changing_exam(request, actor, exam_id, permission=permission, what=what, lock=True)


def _author(session: Session, actor: Actor) -> reports.Author:
    radiologist = assignments.radiologist_of(session, actor)
    return reports.Author(user_id=actor.id, radiologist_id=radiologist.id,
                          name=reports.person_name(radiologist.name))


def _report(session: Session, exam: Exam) -> Report:
    report = reports.report_of(session, exam)
    if report is None:
        raise NotFound(f"exam #{exam.id} has no report yet")
    return report


@router.get("/exams/{exam_id}/report", response_model=ReportOut)
def get_report(request: Request, exam_id: int, actor: CurrentActor) -> ReportOut:
    """The exam's report. The hospital sees its signed versions only, never a draft."""
    with _reading(request, actor, exam_id, what="report",
                  action=Action.READ) as (session, exam):
        out = report_out(session, _report(session, exam))
        if Permission.REPORTS_WRITE not in actor.scope.permissions:
            out = out.model_copy(update={"draft": {}, "revision": 0})
        return out


@router.post("/exams/{exam_id}/report", response_model=ReportOut, status_code=201)
def start_report(request: Request, exam_id: int, actor: CurrentActor,
                 template_code: str | None = None) -> ReportOut:
    """Begin the report of an exam you read, from its protocol's template (or the one
    named), with the normal findings and the request's indication filled in."""
    with _changing(request, actor, exam_id, permission=Permission.REPORTS_WRITE,
               what="report started") as (session, exam, now):
        report = reports.start(session, exam, author=_author(session, actor), now=now,
                               template_code=template_code)
        return report_out(session, report)


@router.put("/exams/{exam_id}/report/draft")
def save_draft(request: Request, exam_id: int, body: DraftIn, actor: CurrentActor
               ) -> dict[str, int]:
    """Keep the draft; 409 draft_conflict if it changed since ``base_revision``."""
    with _changing(request, actor, exam_id, permission=Permission.REPORTS_WRITE,
               what="report draft") as (session, exam, now):
        report = reports.save_draft(session, exam, _report(session, exam), content=body.content,
                                    base_revision=body.base_revision,
                                    author=_author(session, actor), now=now)
        return {"revision": report.revision}


@router.post("/exams/{exam_id}/report/release", response_model=VersionOut, status_code=201)
def release(request: Request, exam_id: int, body: ReleaseIn, actor: CurrentActor
            ) -> VersionOut:
    """Release the draft as a preliminary, sign it as the final, or sign an addendum; its
    deliveries to the hospital leave at once."""
    with _changing(request, actor, exam_id, permission=Permission.REPORTS_WRITE,
               what=f"report {body.kind}") as (session, exam, now):
        version = reports.release(session, exam, _report(session, exam), kind=body.kind,
                                  author=_author(session, actor), now=now)
        out = VersionOut(number=version.number, kind=VersionKind(version.kind),
                         text=version.text, signer_name=version.signer_name,
                         signed_at=version.signed_at, content_sha256=version.content_sha256,
                         pdf_url=pdf_url(exam.id, version.number))
    runtime_of(request).outbox_signal.set()
    return out


@router.get("/exams/{exam_id}/report/versions/{number}/pdf")
def version_pdf(request: Request, exam_id: int, number: int, actor: CurrentActor) -> Response:
    """The signed version's PDF, as the hospital files it."""
    with _reading(request, actor, exam_id, what=f"report PDF v{number}",
                  action=Action.RETRIEVE) as (session, exam):
        version = next((v for v in reports.versions(session, _report(session, exam))
                        if v.number == number), None)
        if version is None:
            raise NotFound(f"exam #{exam_id} has no report version {number}")
        pdf = bytes(version.pdf)
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="report-{exam_id}-v{number}.pdf"',
        "Cache-Control": "private, no-store"})


@router.get("/exams/{exam_id}/critical-findings", response_model=list[FindingOut])
def list_findings(request: Request, exam_id: int, actor: CurrentActor) -> list[FindingOut]:
    with _reading(request, actor, exam_id, what="critical findings",
                  action=Action.READ) as (session, exam):
        return [finding_out(session, f) for f in critical.findings_of(session, exam)]


def _call(body: CallIn) -> critical.Call:
    return critical.Call(called_person=body.called_person, phone=body.phone,
                         called_at=body.called_at, said=body.said, read_back=body.read_back)


@router.post("/exams/{exam_id}/critical-findings", response_model=FindingOut,
             status_code=201)
def declare_finding(request: Request, exam_id: int, body: FindingIn, actor: CurrentActor
                    ) -> FindingOut:
    """Record a critical finding with the call that announced it."""
    with _changing(request, actor, exam_id, permission=Permission.REPORTS_WRITE,
               what="critical finding") as (session, exam, now):
        _author(session, actor)  # a radiologist of the roster, signed in as themselves
        finding = critical.declare(session, exam, finding=body.finding, call=_call(body.call),
                                   caller_id=actor.id, now=now)
        return finding_out(session, finding)


def _finding(session: Session, exam: Exam, finding_id: int) -> CriticalFinding:
    finding = session.get(CriticalFinding, finding_id)
    if finding is None or finding.exam_id != exam.id:
        raise NotFound(f"no critical finding #{finding_id} for exam #{exam.id}")
    return finding


@router.post("/exams/{exam_id}/critical-findings/{finding_id}/calls",
             response_model=FindingOut, status_code=201)
def add_call(request: Request, exam_id: int, finding_id: int, body: CallIn,
             actor: CurrentActor) -> FindingOut:
    """Record another call (the second call, the on-call manager's)."""
    with _changing(request, actor, exam_id, permission=Permission.REPORTS_WRITE,
               what="critical call") as (session, exam, now):
        finding = _finding(session, exam, finding_id)
        critical.record_call(session, exam, finding, call=_call(body), caller_id=actor.id,
                             now=now)
        return finding_out(session, finding)


@router.post("/exams/{exam_id}/critical-findings/{finding_id}/acknowledge",
             response_model=FindingOut)
def acknowledge(request: Request, exam_id: int, finding_id: int, body: AcknowledgeIn,
                actor: CurrentActor) -> FindingOut:
    """The hospital acknowledges the critical finding it was called about."""
    with _changing(request, actor, exam_id, permission=Permission.CRITICAL_ACKNOWLEDGE,
               what="critical finding acknowledged") as (session, exam, now):
        finding = _finding(session, exam, finding_id)
        critical.acknowledge(session, exam, finding, user_id=actor.id, note=body.note, now=now)
        return finding_out(session, finding)


@router.get("/report-templates")
def list_templates(request: Request, actor: CurrentActor) -> list[dict[str, Any]]:
    """Every report template (built-in and imported), newest version of each."""
    actor.scope.require_any()
    runtime = runtime_of(request)
    with transaction(runtime.sessions, readonly=True) as session:
        return [template_json(t) for t in catalogue.all_templates(session)]


#: A template is a few kilobytes; an MRRT file with its coded content, a few dozen.
MAX_TEMPLATE_BYTES = 1024 * 1024


@router.post("/report-templates", status_code=201)
async def import_template(request: Request, actor: CurrentActor) -> dict[str, Any]:
    """Import a template: JSON (as listed here), or an IHE MRRT HTML template
    (``Content-Type: text/html``). A code's version is never replaced, only superseded."""
    actor.scope.require(Permission.ROSTER_MANAGE)
    body = await request.body()
    if len(body) > MAX_TEMPLATE_BYTES:
        raise InvalidInput(f"a template has at most {MAX_TEMPLATE_BYTES} bytes")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput("a template is UTF-8 text") from exc
    mrrt = request.headers.get("content-type", "").startswith(("text/html",
                                                               "application/xhtml"))
    runtime = runtime_of(request)
    with transaction(runtime.sessions) as session:
        template = catalogue.read_template(session, text, mrrt=mrrt)
        catalogue.import_template(session, template, now=runtime.clock.now())
    return template_json(template)
