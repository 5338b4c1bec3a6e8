"""Administration: the reconciliation of deliveries — every read exam of one's sites whose
final report the hospital has not acknowledged everywhere it should (a preliminary still
waiting for its final, a delivery pending or failed) — and sending a failed delivery again
once its cause is fixed at the peer.

The report names exams (their accession numbers): it is patient data, scoped to the
person's sites like any exam query, and each showing of it is an audited read.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from telerad.audit.service import Action, who_for
from telerad.delivery.models import DeliveryState, Endpoint
from telerad.delivery.reconciliation import Unreconciled, retry_failed, unreconciled
from telerad.delivery.service import get_delivery
from telerad.errors import Conflict, NotFound
from telerad.httpauth import runtime_of, source_of
from telerad.web.admin.common import (
    DELIVERIES,
    RETRY,
    Signed,
    Text,
    can,
    changing,
    failure,
    page,
    reading,
    redirect,
)
from telerad.web.pages import form_actor, page_actor
from telerad.web.portal.common import HOSPITAL, local
from telerad.workflow.sites.models import Site

router = APIRouter(include_in_schema=False)
WHEN = "%d/%m/%Y %H:%M"


def _row(found: Unreconciled, site: Site, exam_page: str) -> dict[str, Any]:
    """One exam of the report, its times in its site's zone."""
    zone = site.timezone
    return {"exam_id": found.exam_id, "href": f"{exam_page}{found.exam_id}", "site": site.name,
            "accession_number": found.accession_number or "—", "state": found.state,
            "reported_at": local(found.reported_at, zone, WHEN) or "—",
            "reason": found.reason,
            "outstanding": [{"id": o.delivery_id, "endpoint": o.endpoint, "document": o.document,
                             "state": o.state, "attempts": o.attempts,
                             "last_answer": o.last_answer,
                             "waiting_since": local(o.waiting_since, zone, WHEN),
                             "next_attempt": local(o.next_attempt_at, zone, WHEN),
                             "failed": o.state == DeliveryState.FAILED}
                            for o in found.outstanding]}


def deliveries_page(request: Request, who: Signed, **context: Any) -> HTMLResponse:
    """The report for the person's sites, oldest first; the read is audited."""
    actor = who[0]
    # The exam's own page: the portal for the hospital's staff, the reading page otherwise.
    exam_page = "/portal/exams/" if can(actor, HOSPITAL) else "/exams/"
    with reading(request) as session:
        sites = {s.id: s for s in session.scalars(select(Site))}
        rows = [_row(u, sites[u.site_id], exam_page)
                for u in unreconciled(session, site_ids=actor.scope.site_ids)]
    runtime_of(request).audit(who_for(actor, source_of(request)), Action.READ,
                              detail={"route": "admin/deliveries",
                                      "exam_ids": [r["exam_id"] for r in rows][:100]})
    return page(request, "admin_deliveries.html", "admin_deliveries", who, rows=rows,
                can_retry=can(actor, RETRY), **context)


@router.get("/admin/deliveries", response_class=HTMLResponse)
def deliveries(request: Request, notice: str = "") -> Response:
    return deliveries_page(request, page_actor(request, DELIVERIES), notice=notice)


@router.post("/admin/deliveries/retry", response_class=HTMLResponse)
def retry(request: Request, csrf_token: Text = "", delivery_id: Text = "") -> Response:
    """Send a failed delivery again (after someone fixed its cause at the peer): it is
    pending again, due now, and keeps its place in its exam's order."""
    who = form_actor(request, csrf_token, RETRY)
    actor = who[0]
    if not delivery_id.isdigit():
        raise NotFound("no such delivery")
    try:
        with changing(request, actor, Action.UPDATE, "delivery_retry") as (
                session, now, detail):
            delivery = get_delivery(session, delivery_id=int(delivery_id),
                                    site_ids=actor.scope.site_ids)
            if delivery.state != DeliveryState.FAILED:
                raise Conflict(f"delivery #{delivery.id} is {delivery.state}, not failed")
            endpoint = session.get(Endpoint, delivery.endpoint_id)
            retry_failed(session, delivery=delivery, now=now)
            detail.update(delivery_id=delivery.id, exam_id=delivery.exam_id,
                          endpoint_id=delivery.endpoint_id, document=delivery.document,
                          site_id=endpoint.site_id if endpoint else None)
    except Conflict as exc:  # retried meanwhile (another tab, a colleague)
        if not can(actor, DELIVERIES):
            raise
        return deliveries_page(request, who, status_code=exc.http_status,
                               errors={"retry": failure(request, "admin_retry_failed", exc)})
    runtime_of(request).outbox_signal.set()  # the worker sends it now, not at its next poll
    return redirect("/admin/deliveries", "admin_delivery_retried")
