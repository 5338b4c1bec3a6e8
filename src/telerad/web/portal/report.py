"""The hospital portal's part of one exam's page about its report: the signed versions (never
a draft), newest first, each with its PDF; the critical findings with the calls that
announced them, and the hospital's acknowledgement of each.

Acknowledging calls the JSON API's own function (scope, one transaction, audit event), as the
portal's other forms do; the page is read in the exam page's audited read.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from telerad.auth.models import User
from telerad.auth.service import Actor, Permission
from telerad.errors import Conflict, NotFound
from telerad.reporting import critical
from telerad.reporting import service as reports
from telerad.reporting.models import VersionKind
from telerad.web import reports_api
from telerad.web.portal.common import hospital_form, local
from telerad.workflow.exams.models import Exam

router = APIRouter(include_in_schema=False)
Field = Annotated[str, Form()]
#: The hash as the page shows it (the full value is in the element's title).
SHORT_HASH = 12
#: The longest acknowledgement note (as the JSON API's).
MAX_NOTE = 2000
WHEN = "%d/%m/%Y %H:%M"


def signer_label(name: str) -> str:
    """A DICOM PN (PS3.5 §6.2: FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX) as a signature is written:
    "MARTIN^Alice^^Dr" -> "Dr Alice MARTIN"."""
    family, given, middle, prefix, suffix = ([*name.split("^"), "", "", "", ""])[:5]
    words = (prefix, given, middle, family.upper(), suffix)
    return " ".join(w.strip() for w in words if w.strip()) or "—"


def _versions(session: Session, exam: Exam, zone: str, t: dict[str, str]
              ) -> list[dict[str, Any]]:
    """The signed versions, newest first: what, who, when, the text, the PDF, the hash."""
    report = reports.report_of(session, exam)
    if report is None:
        return []
    shown = []
    addenda = 0
    for version in reports.versions(session, report):
        if version.kind == VersionKind.ADDENDUM:
            addenda += 1
            kind = t["portal_version_addendum"].format(n=addenda)
        else:
            kind = t[f"portal_version_{version.kind}"]
        shown.append({"number": version.number, "kind": kind, "kind_code": version.kind,
                      "signer": signer_label(version.signer_name),
                      "signed_at": local(version.signed_at, zone, WHEN),
                      "signed_iso": version.signed_at.isoformat(), "text": version.text,
                      "pdf_url": reports_api.pdf_url(exam.id, version.number),
                      "sha256": version.content_sha256,
                      "sha256_short": version.content_sha256[:SHORT_HASH]})
    return shown[::-1]


def _names(session: Session, user_ids: set[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    return {user_id: name for user_id, name in session.execute(
        select(User.id, User.display_name).where(User.id.in_(sorted(user_ids))))}


def _findings(session: Session, exam: Exam, *, zone: str, now: dt.datetime,
              may_acknowledge: bool) -> list[dict[str, Any]]:
    """Each critical finding with its calls, and whether (and by whom) it was acknowledged."""
    found = [(f, critical.calls_of(session, f)) for f in critical.findings_of(session, exam)]
    names = _names(session, {c.caller_id for _, calls in found for c in calls}
                   | {f.acknowledged_by for f, _ in found if f.acknowledged_by is not None})
    shown = []
    for finding, calls in found:
        open_ = finding.acknowledged_at is None
        shown.append({
            "id": finding.id, "finding": finding.finding,
            "created_at": local(finding.created_at, zone, WHEN),
            "due_at": local(finding.ack_due_at, zone, WHEN),
            "late": open_ and now > finding.ack_due_at,
            "escalation_level": finding.escalation_level,
            "acknowledged": not open_,
            "acknowledged_at": local(finding.acknowledged_at, zone, WHEN),
            "acknowledged_by": names.get(finding.acknowledged_by or 0, ""),
            "note": finding.acknowledgement_note,
            "can_acknowledge": open_ and may_acknowledge,
            "calls": [{"caller": names.get(c.caller_id, ""), "called": c.called_person,
                       "phone": c.phone, "at": local(c.called_at, zone, WHEN),
                       "read_back": c.read_back} for c in calls]})
    return shown


def report_context(session: Session, exam: Exam, *, actor: Actor, zone: str,
                   now: dt.datetime, t: dict[str, str]) -> dict[str, Any]:
    """What the exam's page shows of its report and critical findings, for this actor."""
    findings = _findings(session, exam, zone=zone, now=now, may_acknowledge=(
        Permission.CRITICAL_ACKNOWLEDGE in actor.scope.permissions))
    return {"versions": _versions(session, exam, zone, t), "findings": findings,
            "open_findings": [f for f in findings if not f["acknowledged"]],
            "acknowledging": any(f["can_acknowledge"] for f in findings)}


@router.post("/portal/exams/{exam_id}/critical/acknowledge")
def acknowledge(request: Request, exam_id: int, csrf_token: Field = "", finding_id: Field = "",
                note: Field = "") -> Response:
    """The hospital acknowledges a critical finding it was called about (once)."""
    actor = hospital_form(request, csrf_token)
    actor.scope.require(Permission.CRITICAL_ACKNOWLEDGE)
    if not finding_id.isdigit():
        raise NotFound("no such critical finding")
    back = f"/portal/exams/{exam_id}"
    if len(note) > MAX_NOTE:
        return RedirectResponse(f"{back}?error=note#exam-critical", status_code=303)
    try:
        reports_api.acknowledge(request, exam_id, int(finding_id),
                                reports_api.AcknowledgeIn(note=note), actor)
    except Conflict:  # acknowledged meanwhile (another tab, a colleague)
        return RedirectResponse(f"{back}?error=acknowledged#exam-critical", status_code=303)
    return RedirectResponse(f"{back}?notice=acknowledged#exam-critical", status_code=303)

