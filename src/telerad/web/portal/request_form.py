"""The hospital portal's request form: filed through the JSON API's own function, or
given back filled with each field's problem beside it (and the contraindication warnings)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlalchemy import select

from telerad.auth.service import Actor, Permission
from telerad.db import transaction
from telerad.errors import Forbidden
from telerad.httpauth import csrf_token, runtime_of
from telerad.web import exams_api
from telerad.web.i18n import TEXTS, language
from telerad.web.pages import render, signed_in
from telerad.web.portal.common import hospital_actor, hospital_form, hospital_sites
from telerad.workflow.requests import checks
from telerad.workflow.requests.models import Protocol
from telerad.workflow.requests.service import Contraindications, RequestForm
from telerad.workflow.sites.models import Site, Urgency

router = APIRouter(include_in_schema=False)
MODALITIES = ("CT", "MR", "CR", "US", "XA", "NM", "PT", "MG")
#: The request form's fields, in the order a problem is listed.
FIELDS = ("site_id", "patient_family_name", "patient_id", "patient_birth_date", "patient_sex",
          "ins", "requesting_physician", "clinical_context", "clinical_question", "urgency",
          "modality", "exam_asked", "pregnancy", "egfr")


class RequestFields(BaseModel):
    """The request form as posted: every field a text, checked field by field below."""

    csrf_token: str = ""
    site_id: str = ""
    patient_id: str = ""
    patient_family_name: str = ""
    patient_given_name: str = ""
    patient_birth_date: str = ""  # YYYY-MM-DD, from <input type="date">
    patient_sex: str = ""
    ins: str = ""
    requesting_physician: str = ""
    clinical_context: str = ""
    clinical_question: str = ""
    urgency: str = ""
    modality: str = "CT"
    exam_asked: str = ""
    pregnancy: str = "unknown"
    egfr: str = ""
    contrast_allergy: str = ""


def _parsed(fields: RequestFields, actor: Actor, sites: dict[int, Site]
            ) -> tuple[RequestForm, dict[str, str]]:
    """The form as a request, and the problems of the fields (codes by field)."""
    found: dict[str, str] = {}
    site_id = int(fields.site_id) if fields.site_id.isdigit() else 0
    if site_id not in sites:
        found["site_id"] = "choice"
    urgency = fields.urgency if fields.urgency in set(Urgency) else ""
    if not urgency:
        found["urgency"] = "choice"
    egfr: float | None = None
    if fields.egfr.strip():
        try:
            egfr = float(fields.egfr.strip().replace(",", "."))
        except ValueError:
            found["egfr"] = "number"
    given = fields.patient_given_name.strip()
    if not fields.patient_family_name.strip():  # a given name alone names nobody
        found["patient_name"] = "required"
    form = RequestForm(
        site_id=site_id, patient_id=fields.patient_id,
        patient_name=fields.patient_family_name.strip() + (f"^{given}" if given else ""),
        patient_birth_date=fields.patient_birth_date.replace("-", ""),
        patient_sex=fields.patient_sex, ins=fields.ins.replace(" ", ""),
        requesting_physician=fields.requesting_physician,
        clinical_context=fields.clinical_context, clinical_question=fields.clinical_question,
        urgency=Urgency(urgency or Urgency.SCHEDULED), modality=fields.modality,
        exam_asked=fields.exam_asked,
        contraindications=Contraindications(pregnancy=fields.pregnancy, egfr=egfr,
                                            contrast_allergy=fields.contrast_allergy == "yes"))
    return form, checks.problems(form) | found


def _request_page(request: Request, actor: Actor, fields: RequestFields, *,
                  problems: dict[str, str] | None = None, status_code: int = 200) -> Response:
    t = TEXTS[language(request)]
    with transaction(runtime_of(request).sessions, readonly=True) as session:
        sites = hospital_sites(session, actor)
        protocols = [(p.modality, p.name) for p in session.scalars(
            select(Protocol).order_by(Protocol.modality, Protocol.name))]
    token = signed_in(request)
    # The name's problems show beside its first part, the family name.
    shown = {("patient_family_name" if field == "patient_name" else field):
             t.get(f"problem_{field}_{code}", t["portal_problem"])
             for field, code in (problems or {}).items()}
    form, _ = _parsed(fields, actor, sites)
    return render(request, "portal_request.html", "portal_new_request", actor=actor,
                  status_code=status_code, fields=fields, sites=list(sites.values()),
                  problems=shown, order=[f for f in FIELDS if f in shown],
                  protocols=protocols, modalities=MODALITIES, urgencies=list(Urgency),
                  csrf=csrf_token(token[1]) if token else "",
                  warnings=checks.warnings(modality=form.modality, exam_asked=form.exam_asked,
                                           contraindications=form.contraindications)
                  if problems else [])


@router.get("/portal/requests/new", response_class=HTMLResponse)
def new_request(request: Request) -> Response:
    signed = hospital_actor(request)
    signed[0].scope.require(Permission.REQUESTS_FILE)
    return _request_page(request, signed[0], RequestFields())


@router.post("/portal/requests", response_class=HTMLResponse)
def file_request(request: Request, fields: Annotated[RequestFields, Form()]) -> Response:
    actor = hospital_form(request, fields.csrf_token)
    actor.scope.require(Permission.REQUESTS_FILE)
    with transaction(runtime_of(request).sessions, readonly=True) as session:
        sites = hospital_sites(session, actor)
    if fields.site_id.isdigit() and int(fields.site_id) not in sites:
        # Never offered by the form: a forged post, refused as the API refuses it.
        raise Forbidden("you may file requests only for your own sites")
    form, problems = _parsed(fields, actor, sites)
    if problems:  # nothing is written: the form comes back, filled, with its problems
        return _request_page(request, actor, fields, problems=problems, status_code=400)
    exam = exams_api.file_request(request, exams_api.RequestIn.model_validate(asdict(form)),
                                  actor)
    return RedirectResponse(f"/portal/exams/{exam.id}?notice=filed", status_code=303)
