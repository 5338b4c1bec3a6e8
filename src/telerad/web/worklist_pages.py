"""The radiologist's pages: the live worklist (server-sent events say when it changed; the
page fetches the new rows), and an exam with its request's clinical context, claimed or
released in one click."""

from __future__ import annotations

import json
from functools import partial
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from telerad.audit.service import Action, who_for
from telerad.auth.service import Actor, Permission
from telerad.db import transaction
from telerad.errors import Conflict, Forbidden, InvalidInput
from telerad.httpauth import csrf_token, runtime_of, source_of
from telerad.web.exams_api import changing_exam
from telerad.web.i18n import TEXTS, language
from telerad.web.live import event_stream
from telerad.web.pages import form_session, page_actor, render, signed_in, to_signin
from telerad.web.viewer import viewer_url
from telerad.workflow.assignments import service as assignments
from telerad.workflow.exams.models import ExamState
from telerad.workflow.exams.queries import get_exam
from telerad.workflow.exams.timeline import timeline
from telerad.workflow.requests import service as requests
from telerad.workflow.sites.models import Site

router = APIRouter(include_in_schema=False)


def _filters(site_id: str, modality: str) -> tuple[int | None, str | None]:
    return (int(site_id) if site_id.isdigit() else None), (modality.strip().upper() or None)


def _rows(request: Request, actor: Actor, *, site_id: int | None, modality: str | None
          ) -> list[dict[str, Any]]:
    """The worklist as the page shows it (a query of the present, audited as a read)."""
    runtime = runtime_of(request)
    now = runtime.clock.now()
    with transaction(runtime.sessions, readonly=True) as session:
        radiologist = assignments.radiologist_of(session, actor)
        items = assignments.worklist(session, scope=actor.scope, radiologist_id=radiologist.id,
                                     now=now, site_id=site_id, modality=modality)
        names: dict[int, str] = {i: n for i, n in session.execute(select(Site.id, Site.name))}
        rows = [{"id": i.exam.id, "kind": i.kind, "urgency": i.exam.urgency or "scheduled",
                 "modality": i.exam.modality, "patient_name": i.exam.patient_name,
                 "site": names.get(i.exam.site_id, ""), "exam_asked": i.exam.exam_asked,
                 "state": i.exam.state,
                 "minutes_left": None if i.exam.due_at is None else
                 int((i.exam.due_at - now).total_seconds() // 60)} for i in items]
    runtime.audit(who_for(actor, source_of(request)), Action.READ,
                  detail={"route": "worklist", "exam_ids": [r["id"] for r in rows][:100]})
    return rows


READERS = frozenset({Permission.EXAMS_CLAIM})


@router.get("/worklist", response_class=HTMLResponse)
def worklist_page(request: Request, site_id: str = "", modality: str = "") -> Response:
    actor, token = page_actor(request, READERS)
    chosen_site, chosen_modality = _filters(site_id, modality)
    rows = _rows(request, actor, site_id=chosen_site, modality=chosen_modality)
    with transaction(runtime_of(request).sessions, readonly=True) as session:
        sites = [{"id": s.id, "name": s.name} for s in session.scalars(select(Site)
                                                                       .order_by(Site.name))
                 if actor.scope.site_ids is None or s.id in actor.scope.site_ids]
    query = urlencode({k: v for k, v in (("site_id", site_id), ("modality", modality)) if v})
    return render(request, "worklist.html", "worklist", items=rows, sites=sites,
                  site_id=chosen_site, modality=chosen_modality or "", query=query,
                  display_name=actor.name, csrf=csrf_token(token), actor=actor)


@router.get("/worklist/items", response_class=HTMLResponse)
def worklist_items(request: Request, site_id: str = "", modality: str = "") -> Response:
    actor, token = page_actor(request, READERS, fragment=True)
    chosen_site, chosen_modality = _filters(site_id, modality)
    lang = language(request)
    return render(request, "worklist_items.html", "worklist",
                  items=_rows(request, actor, site_id=chosen_site,
                              modality=chosen_modality), lang=lang, csrf=csrf_token(token))


@router.get("/worklist/events")
async def worklist_events(request: Request, site_id: str = "", modality: str = "") -> Response:
    """Server-sent events: ``worklist`` each time the caller's worklist changes."""
    _actor, token = await run_in_threadpool(partial(page_actor, request, READERS,
                                                    fragment=True))
    chosen_site, chosen_modality = _filters(site_id, modality)

    def state(actor: Actor) -> object:
        actor.scope.require(Permission.EXAMS_CLAIM)
        runtime = runtime_of(request)
        with transaction(runtime.sessions, readonly=True) as session:
            radiologist = assignments.radiologist_of(session, actor)
            items = assignments.worklist(session, scope=actor.scope,
                                         radiologist_id=radiologist.id,
                                         now=runtime.clock.now(), site_id=chosen_site,
                                         modality=chosen_modality)
            return [(i.exam.id, i.kind, i.exam.state, i.exam.escalation_level) for i in items]

    return event_stream(request, token, "worklist", state)


@router.get("/exams/{exam_id}", response_class=HTMLResponse)
def exam_page(request: Request, exam_id: int, error: str = "", problem: str = "") -> Response:
    signed = signed_in(request)
    if signed is None:
        return to_signin()
    actor, token = signed
    actor.scope.require(Permission.EXAMS_READ)
    runtime = runtime_of(request)
    with transaction(runtime.sessions, readonly=True) as session:
        exam = get_exam(session, scope=actor.scope, exam_id=exam_id)
        events = timeline(session, exam)
        is_radiologist = Permission.EXAMS_CLAIM in actor.scope.permissions
        reader = (assignments.radiologist_of(session, actor).id
                  if is_radiologist else None)
        can_decide = (Permission.REQUESTS_DECIDE in actor.scope.permissions
                      and exam.state == ExamState.FILED)
        protocols = ([p for p in requests.list_protocols(session)
                      if p.modality == exam.modality] if can_decide else [])
        contraindications = ", ".join(f"{k}: {v}" for k, v in
                                      json.loads(exam.contraindications).items())
        page = render(request, "exam.html", "exam", exam=exam, timeline=events, actor=actor,
                      contraindications=contraindications, csrf=csrf_token(token),
                      can_claim=is_radiologist and exam.state == "ready",
                      can_decide=can_decide, protocols=protocols,
                      can_release=reader is not None and exam.reader_id == reader,
                      viewer_url=viewer_url(exam.study_instance_uid)
                      if reader is not None and exam.reader_id == reader else "",
                      error=TEXTS[language(request)].get(error, "") or problem[:300])
    runtime.audit(who_for(actor, source_of(request)), Action.READ,
                  study_instance_uid=exam.study_instance_uid or "",
                  detail={"route": "exams/{id}", "exam_id": exam_id})
    return page


class DecisionForm(BaseModel):
    """The exam page's justification form (the fields of the API's decision)."""

    csrf_token: str
    decision: requests.Decision
    protocol_code: str = ""
    exam_asked: str = ""
    reason: str = ""


@router.post("/exams/{exam_id}/decision")
def decision(request: Request, exam_id: int, form: Annotated[DecisionForm, Form()]
             ) -> Response:
    """The radiologist's justification of a request, from the exam's page: the API's
    decision, in the same change context."""
    signed = form_session(request, form.csrf_token)
    if signed is None:
        return to_signin()
    actor = signed[0]
    actor.scope.require(Permission.REQUESTS_DECIDE)
    try:
        with changing_exam(request, actor, exam_id, permission=Permission.REQUESTS_DECIDE,
                           what=f"decision:{form.decision}") as (session, exam, now):
            requests.decide(session, exam, decision=form.decision,
                            radiologist=assignments.radiologist_of(session, actor),
                            user_id=actor.id, now=now, protocol_code=form.protocol_code or None,
                            exam_asked=form.exam_asked or None, reason=form.reason)
    except InvalidInput as exc:
        return RedirectResponse(f"/exams/{exam_id}?" + urlencode({"problem": exc.message}),
                                status_code=303)
    except (Conflict, Forbidden):
        return RedirectResponse(f"/exams/{exam_id}?error=not_offered", status_code=303)
    return RedirectResponse(f"/exams/{exam_id}", status_code=303)


@router.post("/exams/{exam_id}/claim")
def claim(request: Request, exam_id: int, csrf_token: Annotated[str, Form()]) -> Response:
    """Claim, and open the reading page (viewer and report editor) at once."""
    return _reading_action(request, exam_id, csrf_token, assignments.claim, "claimed",
                           then=f"/exams/{exam_id}/read")


@router.post("/exams/{exam_id}/release")
def release(request: Request, exam_id: int, csrf_token: Annotated[str, Form()]) -> Response:
    return _reading_action(request, exam_id, csrf_token, assignments.release, "released")


def _reading_action(request: Request, exam_id: int, presented: str, action: Any,
                    what: str, *, then: str = "") -> Response:
    signed = form_session(request, presented)
    if signed is None:
        return to_signin()
    actor = signed[0]
    actor.scope.require(Permission.EXAMS_CLAIM)  # not a reader at all: 403, not a message
    try:
        with changing_exam(request, actor, exam_id, permission=Permission.EXAMS_CLAIM,
                           what=what) as (session, exam, now):
            action(session, exam, radiologist=assignments.radiologist_of(session, actor),
                   now=now)
    except assignments.AlreadyClaimed:
        return RedirectResponse(f"/exams/{exam_id}?error=claimed_by_other", status_code=303)
    except (Conflict, Forbidden):
        return RedirectResponse(f"/exams/{exam_id}?error=not_offered", status_code=303)
    return RedirectResponse(then or f"/exams/{exam_id}", status_code=303)
