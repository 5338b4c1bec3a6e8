"""Administration: sites and their devices (AE titles), where their reports go (RIS over HL7
MLLP, PACS over DICOM) and their reporting settings (HL7 facility, critical findings), and
contracts (coverage windows, the reading teams in cascade order, turnaround targets per
urgency)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from telerad.audit.service import Action
from telerad.delivery.models import ChannelKind
from telerad.delivery.service import add_endpoint, endpoints_of
from telerad.errors import Conflict, InvalidInput, NotFound
from telerad.web.admin.common import (
    CONFIG,
    MANAGE,
    Signed,
    Text,
    changing,
    failure,
    page,
    reading,
    redirect,
    site_of,
    visible_sites,
)
from telerad.web.pages import form_actor, page_actor
from telerad.workflow.roster.week import day_groups, describe
from telerad.workflow.sites.contracts import (
    add_contract,
    cascade,
    contracts_of,
    coverage,
    parse_window,
    targets,
)
from telerad.workflow.sites.devices import remove_device
from telerad.workflow.sites.models import DEFAULT_TARGETS, Contract, Site, Team, Urgency
from telerad.workflow.sites.service import add_device, add_site, update_reporting_settings

router = APIRouter(include_in_schema=False)


def contract_view(session: Session, contract: Contract) -> dict[str, Any]:
    """A contract as the pages show it: windows in the words they are typed in."""
    return {"modality": contract.modality,
            "windows": [{"days": day_groups(w.days), "start": f"{w.start:%H:%M}",
                         "end": f"{w.end:%H:%M}", "text": describe(w)}
                        for w in coverage(contract)],
            "targets": [(str(u), int(v.total_seconds() // 60))
                        for u, v in targets(contract).items()],
            "teams": [t.name for t in cascade(session, contract)]}


def site_rows(session: Session, sites: list[Site]) -> list[dict[str, Any]]:
    return [{"site": s, "ae_titles": [d.ae_title for d in s.devices],
             "contracts": [contract_view(session, c) for c in contracts_of(session, s.id)]}
            for s in sites]


def sites_page(request: Request, who: Signed, **context: Any) -> HTMLResponse:
    with reading(request) as session:
        rows = site_rows(session, visible_sites(session, who[0]))
        return page(request, "admin_sites.html", "admin_sites", who, rows=rows, **context)


@router.get("/admin/sites", response_class=HTMLResponse)
def sites(request: Request, notice: str = "") -> Response:
    return sites_page(request, page_actor(request, CONFIG), notice=notice)


@router.post("/admin/sites", response_class=HTMLResponse)
def create_site(request: Request, csrf_token: Text = "", name: Text = "",
                timezone: Text = "Europe/Paris") -> Response:
    who = form_actor(request, csrf_token, MANAGE)
    try:
        with changing(request, who[0], Action.CREATE, "site") as (session, now, detail):
            site = add_site(session, name=name, ae_titles=[], now=now,
                            timezone=timezone.strip())
            detail.update(site_id=site.id, name=site.name, timezone=site.timezone)
    except (InvalidInput, Conflict) as exc:
        return sites_page(request, who, status_code=exc.http_status,
                          errors={"site": failure(request, "admin_site_failed", exc)},
                          form={"name": name, "timezone": timezone})
    return redirect(f"/admin/sites/{site.id}", "admin_site_added")


def site_page(request: Request, who: Signed, site_id: int, **context: Any) -> HTMLResponse:
    with reading(request) as session:
        site = site_of(session, who[0], site_id)
        teams = list(session.scalars(select(Team.name).order_by(Team.name)))
        return page(request, "admin_site.html", "admin_site", who, site=site,
                    devices=list(site.devices), teams=teams, urgencies=list(Urgency),
                    endpoints=endpoints_of(session, site_ids=frozenset({site_id})),
                    channels=list(ChannelKind),
                    defaults={str(u): m for u, m in DEFAULT_TARGETS.items()},
                    contracts=[contract_view(session, c) for c in contracts_of(session, site_id)],
                    **context)


@router.get("/admin/sites/{site_id}", response_class=HTMLResponse)
def site_detail(request: Request, site_id: int, notice: str = "") -> Response:
    return site_page(request, page_actor(request, CONFIG), site_id, notice=notice)


@router.post("/admin/sites/{site_id}/devices", response_class=HTMLResponse)
def create_device(request: Request, site_id: int, csrf_token: Text = "",
                  ae_title: Text = "") -> Response:
    who = form_actor(request, csrf_token, MANAGE)
    try:
        with changing(request, who[0], Action.CREATE, "device") as (session, now, detail):
            device = add_device(session, site=site_of(session, who[0], site_id),
                                ae_title=ae_title, now=now)
            detail.update(site_id=site_id, device_id=device.id, ae_title=device.ae_title)
    except (InvalidInput, Conflict) as exc:
        return site_page(request, who, site_id, status_code=exc.http_status,
                         errors={"device": failure(request, "admin_device_failed", exc)},
                         form={"ae_title": ae_title})
    return redirect(f"/admin/sites/{site_id}", "admin_device_added")


@router.post("/admin/sites/{site_id}/devices/{device_id}/delete")
def delete_device(request: Request, site_id: int, device_id: int,
                  csrf_token: Text = "") -> Response:
    who = form_actor(request, csrf_token, MANAGE)
    with changing(request, who[0], Action.UPDATE, "device_removed") as (session, _now, detail):
        site_of(session, who[0], site_id)
        detail.update(site_id=site_id, device_id=device_id,
                      ae_title=remove_device(session, site_id=site_id, device_id=device_id))
    return redirect(f"/admin/sites/{site_id}", "admin_device_removed")


#: Which field each problem the services name is about (a marker in the problem's words),
#: and the key of our words for it beside that field.
ENDPOINT_PROBLEMS = (("channel", "channel", "channel"), ("name the endpoint", "name", "name"),
                     ("host", "host", "host"), ("port", "port", "port"),
                     ("AE title", "called_ae_title", "called_ae_title"),
                     ("receiving application", "receiving_application",
                      "receiving_application"))
REPORTING_PROBLEMS = (("HL7 facility", "hl7_facility", "hl7_facility"),
                      ("critical acknowledgement", "critical_ack_minutes",
                       "critical_ack_minutes"),
                      ("on-call manager has", "on_call_manager", "on_call_manager"),
                      ("on-call phone", "on_call_phone", "on_call_phone"),
                      ("go together", "on_call_phone", "on_call_pair"))


def field_problems(message: str, markers: tuple[tuple[str, str, str], ...]) -> dict[str, str]:
    """The fields a refused form's problems ("a; b; c", as the services join them) are
    about: {field: key of its words}; a problem about no field is left to the form's alert."""
    found: dict[str, str] = {}
    for problem in message.split("; "):
        for marker, field, key in markers:
            if marker in problem:
                found.setdefault(field, key)
                break
    return found


def whole_number(value: str) -> int:
    """A number typed in a form; 0 when it is none, so that the service names the problem
    with the others."""
    value = value.strip()
    return int(value) if value.isdigit() and len(value) < 10 else 0


class EndpointFields(BaseModel):
    """The recipient form: the channel, a name, where it listens; the PACS's AE title, or
    what the RIS expects in MSH-5 and MSH-6."""

    csrf_token: str = ""
    channel: str = ""
    name: str = ""
    host: str = ""
    port: str = ""
    called_ae_title: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""


@router.post("/admin/sites/{site_id}/endpoints", response_class=HTMLResponse)
def create_endpoint(request: Request, site_id: int,
                    fields: Annotated[EndpointFields, Form()]) -> Response:
    """Add where the site's signed reports go: its RIS (HL7 ORU^R01 over MLLP) or its PACS
    (DICOM C-STORE); every later release is delivered there too."""
    who = form_actor(request, fields.csrf_token, MANAGE)
    with reading(request) as session:
        site_of(session, who[0], site_id)  # an unknown site is a 404 page, not a form error
    hl7 = fields.channel == ChannelKind.HL7_MLLP
    try:
        with changing(request, who[0], Action.CREATE, "endpoint") as (session, now, detail):
            endpoint = add_endpoint(
                session, site_id=site_id, channel=fields.channel, name=fields.name,
                host=fields.host, port=whole_number(fields.port), now=now,
                called_ae_title=(fields.called_ae_title
                                 if fields.channel == ChannelKind.DICOM_STORE else ""),
                receiving_application=fields.receiving_application if hl7 else "",
                receiving_facility=fields.receiving_facility if hl7 else "")
            detail.update(site_id=site_id, endpoint_id=endpoint.id, channel=endpoint.channel,
                          name=endpoint.name, host=endpoint.host, port=endpoint.port)
    except InvalidInput as exc:
        return site_page(request, who, site_id, status_code=exc.http_status,
                         errors={"endpoint": failure(request, "admin_endpoint_failed", exc),
                                 "endpoint_fields": field_problems(exc.message,
                                                                   ENDPOINT_PROBLEMS)},
                         form={"endpoint": fields.model_dump(exclude={"csrf_token"})})
    return redirect(f"/admin/sites/{site_id}", "admin_endpoint_added")


class ReportingFields(BaseModel):
    """The site's reporting settings form."""

    csrf_token: str = ""
    hl7_facility: str = ""
    critical_ack_minutes: str = ""
    on_call_manager: str = ""
    on_call_phone: str = ""


@router.post("/admin/sites/{site_id}/reporting", response_class=HTMLResponse)
def save_reporting(request: Request, site_id: int,
                   fields: Annotated[ReportingFields, Form()]) -> Response:
    """The site's HL7 facility (MSH-4 of its RIS's orders), the minutes it has to acknowledge
    a critical finding, and who is called when it does not."""
    who = form_actor(request, fields.csrf_token, MANAGE)
    with reading(request) as session:
        site_of(session, who[0], site_id)
    try:
        with changing(request, who[0], Action.UPDATE, "site_reporting") as (
                session, _now, detail):
            site = update_reporting_settings(
                session, site_id=site_id, hl7_facility=fields.hl7_facility,
                critical_ack_minutes=whole_number(fields.critical_ack_minutes),
                on_call_manager=fields.on_call_manager, on_call_phone=fields.on_call_phone)
            detail.update(site_id=site_id, hl7_facility=site.hl7_facility or "",
                          critical_ack_minutes=site.critical_ack_minutes,
                          on_call_manager=site.on_call_manager,
                          on_call_phone=site.on_call_phone)
    except (InvalidInput, Conflict) as exc:
        problems = ({"hl7_facility": "hl7_facility_taken"} if isinstance(exc, Conflict)
                    else field_problems(exc.message, REPORTING_PROBLEMS))
        return site_page(request, who, site_id, status_code=exc.http_status,
                         errors={"reporting": failure(request, "admin_reporting_failed", exc),
                                 "reporting_fields": problems},
                         form={"reporting": fields.model_dump(exclude={"csrf_token"})})
    return redirect(f"/admin/sites/{site_id}", "admin_reporting_saved")


def minutes(value: str, urgency: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise InvalidInput(f"the {urgency} target is a whole number of minutes") from None


class ContractFields(BaseModel):
    """The contract form: windows one per line, up to three teams in cascade order, a
    target in minutes per urgency (empty: the default)."""

    csrf_token: str = ""
    modality: str = ""
    windows: str = ""
    team_1: str = ""
    team_2: str = ""
    team_3: str = ""
    target_stroke_alert: str = ""
    target_life_threatening: str = ""
    target_urgent: str = ""
    target_scheduled: str = ""

    def target_minutes(self) -> dict[Urgency, int]:
        given = {u: str(getattr(self, f"target_{u}")).strip() for u in Urgency}
        return {u: minutes(v, u) for u, v in given.items() if v}


@router.post("/admin/sites/{site_id}/contracts", response_class=HTMLResponse)
def create_contract(request: Request, site_id: int,
                    fields: Annotated[ContractFields, Form()]) -> Response:
    who = form_actor(request, fields.csrf_token, MANAGE)
    with reading(request) as session:
        site_of(session, who[0], site_id)  # an unknown site is a 404 page, not a form error
    try:
        with changing(request, who[0], Action.CREATE, "contract") as (session, now, detail):
            contract = add_contract(
                session, site_id=site_id, modality=fields.modality, now=now,
                windows=[parse_window(line) for line in fields.windows.splitlines()
                         if line.strip()],
                team_names=[name for name in (fields.team_1, fields.team_2, fields.team_3)
                            if name.strip()],
                target_minutes=fields.target_minutes())
            detail.update(site_id=site_id, contract_id=contract.id, modality=contract.modality)
    except (InvalidInput, Conflict, NotFound) as exc:  # NotFound: a team renamed meanwhile
        return site_page(request, who, site_id, status_code=exc.http_status,
                         errors={"contract": failure(request, "admin_contract_failed", exc)},
                         form=fields.model_dump(exclude={"csrf_token"}))
    return redirect(f"/admin/sites/{site_id}", "admin_contract_added")


@router.get("/admin/contracts", response_class=HTMLResponse)
def contracts(request: Request) -> Response:
    who = page_actor(request, CONFIG)
    with reading(request) as session:
        rows = site_rows(session, visible_sites(session, who[0]))
        return page(request, "admin_contracts.html", "admin_contracts", who, rows=rows)
