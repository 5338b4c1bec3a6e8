"""The administration pages over real HTTP (httpx keeps the cookies as a browser would): who
may open what, CSRF on every form, and that each form changes what it says — a device lets
a scanner in, the week shows gaps, a created account signs in, the audit trail is searched
and the search itself is audited."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape

import httpx
from sqlalchemy import func, select, text, update
from starlette.routing import BaseRoute, Route

from telerad.audit.models import AuditEvent
from telerad.audit.service import Action, Who, record
from telerad.auth.models import User, UserSite
from telerad.db import transaction
from telerad.testing.dimse import raw_association
from telerad.testing.workflow import PASSWORD, totp_code
from telerad.web.admin.routes import router as admin_router
from telerad.workflow.roster.models import Credential, Radiologist, ShiftRow
from telerad.workflow.sites.models import Contract, Device, Site, Team
from tests.integration.page_clients import Browsers, alert_of, browsers, csrf_of
from tests.integration.workflow_env import Env, env, request_body

__all__ = ["browsers", "env"]
VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
WEEK = "2026-11-23"  # the seeded Tuesday night is in it


def counts(env: Env) -> dict[str, object]:
    """What the forms may change, to see that a refused one changed nothing."""
    with transaction(env.runtime.sessions, readonly=True) as session:
        found: dict[str, object] = {
            model.__tablename__: session.scalar(select(func.count()).select_from(model))
            for model in (Site, Device, Contract, Team, Radiologist, Credential, ShiftRow,
                          User, UserSite)}
        found["accounts"] = sorted(tuple(row) for row in session.execute(select(
            User.username, User.role, User.active, User.totp_enabled_at)))
        found["changes"] = session.scalar(select(func.count()).select_from(AuditEvent)
                                          .where(AuditEvent.action.in_(("create", "update"))))
    return found


def cell(html: str, day: str, modality: str = "CT") -> str:
    """The roster's coverage cell of ``day``."""
    match = re.search(rf'<td data-day="{day}" data-modality="{modality}" class="([^"]*)">'
                      r"(.*?)</td>", html, re.S)
    assert match, f"no {modality} coverage cell for {day}"
    return match.group(1) + " " + match.group(2)


# --- Who may open what -----------------------------------------------------------------------

def _pages(env: Env) -> dict[str, str]:
    carcassonne, narbonne = env.night.sites["carcassonne"], env.night.sites["narbonne"]
    return {
        "overview": "/admin", "sites": "/admin/sites", "site": f"/admin/sites/{carcassonne}",
        "other_site": f"/admin/sites/{narbonne}", "contracts": "/admin/contracts",
        "teams": "/admin/teams", "radiologists": "/admin/radiologists",
        "radiologist": f"/admin/radiologists/{env.night.radiologists['dr_alice']}",
        "roster": f"/admin/roster?site_id={carcassonne}&week={WEEK}", "users": "/admin/users",
        "user": f"/admin/users/{env.night.users['er_carcassonne']}", "audit": "/admin/audit",
    }


CONFIG = {"overview", "sites", "site", "other_site", "contracts"}
ROSTER = {"teams", "radiologists", "radiologist", "roster"}
ADMIN = {"users", "user", "audit"}
ALLOWED = {
    "admin": CONFIG | ROSTER | ADMIN,
    "coordinator": CONFIG | ROSTER,
    "manager_carcassonne": {"overview", "sites", "site", "contracts"},
    "er_carcassonne": set(),
    "dr_alice": set(),
}


def test_each_page_opens_for_whom_it_is_meant(env: Env, browsers: Browsers) -> None:
    pages = _pages(env)
    anonymous = browsers(None)
    for name, path in pages.items():
        answer = anonymous.get(path)
        assert (answer.status_code, answer.headers.get("location")) == (303, "/signin"), name
    for username, allowed in ALLOWED.items():
        http = browsers(username)
        for name, path in pages.items():
            answer = http.get(path)
            expected = 200 if name in allowed else 403
            assert answer.status_code == expected, (username, name, answer.status_code)
            assert answer.headers["content-type"].startswith("text/html")
            if expected == 403:
                assert "may not open this page" in alert_of(
                    answer.text)


def test_the_pages_speak_french_by_default(env: Env, browsers: Browsers) -> None:
    http = browsers("admin")
    del http.headers["Accept-Language"]
    week = http.get(f"/admin/roster?site_id={env.night.sites['carcassonne']}&week={WEEK}")
    assert '<html lang="fr">' in week.text
    assert "Tableau de garde de CH Carcassonne, semaine du 23/11/2026" in week.text
    assert "<strong>Trou</strong>" in cell(week.text, "2026-11-25")
    site = http.get(f"/admin/sites/{env.night.sites['carcassonne']}").text
    assert "tous les jours 18:30\u201308:00" in site
    assert "Alerte AVC\u00a0: 15 min" in site


def test_the_site_manager_reads_their_own_site_and_changes_nothing(env: Env,
                                                                   browsers: Browsers) -> None:
    manager = browsers("manager_carcassonne")
    listing = manager.get("/admin/sites").text
    assert "CH Carcassonne" in listing
    assert "CH Narbonne" not in listing
    assert 'action="/admin/sites"' not in listing  # no "add a site" form
    site = manager.get(f"/admin/sites/{env.night.sites['carcassonne']}").text
    assert "CT_CARCA" in site
    assert "every day 18:30\u201308:00" in site  # the contract's window, in words
    assert "<li>Imadis</li><li>Occitanie</li>" in site  # its cascade, in order
    assert "Read only" in site
    assert "<form" not in site.split('<main id="content">')[1]
    overview = manager.get("/admin").text
    assert 'href="/admin/sites"' in overview
    assert 'href="/admin/roster"' not in overview  # only what the role may open is listed
    before = counts(env)
    csrf = csrf_of(manager.get("/").text)
    answer = manager.post(f"/admin/sites/{env.night.sites['carcassonne']}/devices",
                          data={"csrf_token": csrf, "ae_title": "CT_MINE"})
    assert answer.status_code == 403
    assert counts(env) == before


# --- CSRF on every form ----------------------------------------------------------------------

def _routes(routes: list[BaseRoute]) -> Iterator[Route]:
    """Every route, inside the included routers too (one per section of the menu)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _routes(included.routes)
        elif isinstance(route, Route):
            yield route


def _post_routes(env: Env) -> list[str]:
    """Every POST route of the administration, its path parameters filled in (a route added
    later is tried too)."""
    values = {"site_id": str(env.night.sites["carcassonne"]), "device_id": "1",
              "radiologist_id": str(env.night.radiologists["dr_alice"]),
              "shift_id": "1", "user_id": str(env.night.users["er_carcassonne"])}
    paths = [r.path for r in _routes(admin_router.routes) if "POST" in (r.methods or set())]
    assert len(paths) >= 15
    filled = []
    for path in paths:
        names = re.findall(r"{(\w+)}", path)
        assert all(n in values for n in names), f"{path}: say what to try for {names}"
        filled.append(re.sub(r"{(\w+)}", lambda m: values[m[1]], path))
    return filled


def test_every_form_needs_its_csrf_token(env: Env, browsers: Browsers) -> None:
    admin = browsers("admin")
    carcassonne = str(env.night.sites["carcassonne"])
    data = {"name": "Forged", "timezone": "Europe/Paris", "ae_title": "FORGED", "kind":
            "region", "modality": "MR", "windows": "every 08:00-18:00", "team_1": "Imadis",
            "site_ids": carcassonne, "username": "forged", "password": "x" * 20,
            "role": "admin", "radiologist_id": str(env.night.radiologists["dr_alice"]),
            "team_id": "1", "day": "2026-11-25", "start": "18:30", "end": "08:00",
            "site_id": carcassonne, "week": WEEK}
    routes = _post_routes(env)
    before = counts(env)
    real = csrf_of(admin.get("/").text)
    for path in routes:
        files = {"file": ("r.csv", b"radiologist,team,start,end,role\n")} if "import" in path \
            else None
        for token in ("", "0" * 64, real[:-1] + ("0" if real[-1] != "0" else "1")):
            answer = admin.post(path, data={**data, "csrf_token": token}, files=files)
            assert answer.status_code == 403, (path, token, answer.status_code)
            assert "page expired" in alert_of(answer.text)
        anonymous = browsers(None).post(path, data={**data, "csrf_token": real}, files=files)
        assert (anonymous.status_code, anonymous.headers["location"]) == (303, "/signin")
    assert counts(env) == before
    # With its token but without the right: refused too.
    coordinator = browsers("coordinator")
    token = csrf_of(coordinator.get("/").text)
    for path in [p for p in routes if p.startswith("/admin/users")]:
        assert coordinator.post(path, data={**data, "csrf_token": token}).status_code == 403
    assert counts(env) == before


# --- Sites and devices -----------------------------------------------------------------------

def _association(env: Env, calling: str) -> bool:
    with raw_association(env.server.dicom_port, calling=calling,
                         contexts=[(VERIFICATION, IMPLICIT_LE)]) as assoc:
        return bool(assoc.is_established)


def test_a_device_added_lets_its_scanner_in_and_removed_keeps_it_out(env: Env,
                                                                     browsers: Browsers) -> None:
    admin = browsers("admin")
    site_id = env.night.sites["carcassonne"]
    page = admin.get(f"/admin/sites/{site_id}")
    csrf = csrf_of(page.text)
    assert not _association(env, "CT_NEW_SCAN")  # unknown: rejected at association

    answer = admin.post(f"/admin/sites/{site_id}/devices",
                        data={"csrf_token": csrf, "ae_title": "CT_NEW_SCAN"})
    assert (answer.status_code, answer.headers["location"]) == (
        303, f"/admin/sites/{site_id}?notice=admin_device_added")
    page = admin.get(answer.headers["location"])
    assert 'data-ae-title="CT_NEW_SCAN"' in page.text
    assert "accepted from its next association" in page.text
    assert _association(env, "CT_NEW_SCAN")

    # Bad input: the error beside the form, the form refilled, nothing added.
    before = counts(env)
    for ae_title, status, says in (("MUCH_TOO_LONG_AE_TITLE", 400, "invalid AE title"),
                                   ("CT_NARBO", 409, "already belongs to site")):
        refused = admin.post(f"/admin/sites/{site_id}/devices",
                             data={"csrf_token": csrf, "ae_title": ae_title})
        assert refused.status_code == status
        assert "The device was not added" in alert_of(refused.text)
        assert says in alert_of(refused.text)
        assert f'value="{ae_title}"' in refused.text
    assert counts(env) == before

    device_id = re.search(r'action="/admin/sites/\d+/devices/(\d+)/delete"[^<]*<input[^>]*>'
                          r'<button[^>]*>Remove<span class="visually-hidden"> CT_NEW_SCAN',
                          page.text)
    assert device_id
    removed = admin.post(f"/admin/sites/{site_id}/devices/{device_id.group(1)}/delete",
                         data={"csrf_token": csrf})
    assert removed.status_code == 303
    assert "CT_NEW_SCAN" not in admin.get(f"/admin/sites/{site_id}").text
    assert not _association(env, "CT_NEW_SCAN")
    assert _association(env, "CT_CARCA")  # the site's other scanner is untouched


def test_sites_contracts_teams_and_radiologists_forms(env: Env, browsers: Browsers) -> None:
    admin = browsers("coordinator")
    csrf = csrf_of(admin.get("/admin/sites").text)
    # A site, with a bad time zone first.
    before = counts(env)
    refused = admin.post("/admin/sites", data={"csrf_token": csrf, "name": "CH Limoux",
                                               "timezone": "Europe/Nowhere"})
    assert refused.status_code == 400
    assert "unknown time zone" in alert_of(refused.text)
    assert 'value="CH Limoux"' in refused.text
    assert counts(env) == before
    added = admin.post("/admin/sites", data={"csrf_token": csrf, "name": "CH Limoux",
                                             "timezone": "Europe/Paris"})
    assert added.status_code == 303
    site_path = added.headers["location"].split("?")[0]
    site_id = int(site_path.rsplit("/", 1)[1])

    # A contract: a window that does not parse, then a good one with two teams in order.
    bad = admin.post(f"{site_path}/contracts", data={
        "csrf_token": csrf, "modality": "MR", "windows": "every 8h-18h", "team_1": "Imadis"})
    assert bad.status_code == 400
    assert "write DAYS HH:MM-HH:MM" in alert_of(bad.text)
    assert "every 8h-18h</textarea>" in bad.text
    good = admin.post(f"{site_path}/contracts", data={
        "csrf_token": csrf, "modality": "mr", "windows": "weekdays 08:00-18:30\n"
        "weekends,holiday 08:00-08:00", "team_1": "Occitanie", "team_2": "Imadis",
        "target_urgent": "45"})
    assert good.status_code == 303
    page = admin.get(site_path).text
    assert "Monday to Friday 08:00\u201318:30" in page
    assert "weekends, public holidays 08:00\u201308:00" in page
    assert "<li>Occitanie</li><li>Imadis</li>" in page
    assert "Urgent: 45 min" in page
    assert "Stroke alert: 15 min" in page  # the default where none was given
    duplicate = admin.post(f"{site_path}/contracts", data={
        "csrf_token": csrf, "modality": "MR", "windows": "every 08:00-18:00",
        "team_1": "Imadis"})
    assert duplicate.status_code == 409

    # A team, then a radiologist credentialed for the new site, then their credentials.
    assert admin.post("/admin/teams", data={"csrf_token": csrf, "name": "GHT Aude",
                                            "kind": "group"}).status_code == 303
    teams = admin.get("/admin/teams").text
    assert re.search(r'data-team="GHT Aude">.*?Hospital group', teams, re.S)
    assert re.search(r'data-team="Imadis">.*?Dr Alice Martin.*?CH Carcassonne CT \(n° 1\)',
                     teams, re.S)
    assert admin.post("/admin/teams", data={"csrf_token": csrf, "name": "GHT Aude",
                                            "kind": "group"}).status_code == 409
    with transaction(env.runtime.sessions) as session:
        from telerad.auth.models import Role  # noqa: PLC0415
        from telerad.auth.users import create_user  # noqa: PLC0415
        create_user(session, username="dr_gaspard", display_name="Dr Gaspard",
                    role=Role.RADIOLOGIST, password=PASSWORD, site_ids=[],
                    now=env.clock.now())
    added = admin.post("/admin/radiologists", data={
        "csrf_token": csrf, "name": "Dr Gaspard Vert", "site_ids": [str(site_id)],
        "subspecialties": "MSK, neuro", "username": "dr_gaspard"})
    assert added.status_code == 303
    listing = admin.get("/admin/radiologists").text
    row = re.search(r'data-radiologist="Dr Gaspard Vert">(.*?)</tr>', listing, re.S)
    assert row
    assert "CH Limoux" in row.group(1)
    assert "msk, neuro" in row.group(1)
    assert "dr_gaspard" in row.group(1)
    radiologist_id = re.search(r'href="/admin/radiologists/(\d+)">Edit credentials'
                               r'<span class="visually-hidden"> : Dr Gaspard',
                               listing)
    assert radiologist_id
    carcassonne = env.night.sites["carcassonne"]
    saved = admin.post(f"/admin/radiologists/{radiologist_id.group(1)}", data={
        "csrf_token": csrf, "site_ids": [str(carcassonne), str(site_id)],
        "subspecialties": "neuro"})
    assert saved.status_code == 303
    with transaction(env.runtime.sessions, readonly=True) as session:
        account_sites = set(session.scalars(select(UserSite.site_id).join(
            User, User.id == UserSite.user_id).where(User.username == "dr_gaspard")))
    assert account_sites == {carcassonne, site_id}  # the account follows the credentials
    unknown = admin.post(f"/admin/radiologists/{radiologist_id.group(1)}", data={
        "csrf_token": csrf, "site_ids": ["999999"], "subspecialties": "neuro"})
    assert unknown.status_code == 400
    with transaction(env.runtime.sessions, readonly=True) as session:
        events = list(session.scalars(select(AuditEvent.detail).where(
            AuditEvent.actor_id.like("%:coordinator"), AuditEvent.action.in_(
                ("create", "update")))))
    assert [e.split('"what":"')[1].split('"')[0] for e in events] == [
        "site", "contract", "team", "radiologist", "credentials"]


# --- The roster's week -----------------------------------------------------------------------

def test_the_week_shows_gaps_and_shifts_fill_them(env: Env, browsers: Browsers) -> None:
    coordinator = browsers("coordinator")
    site_id = env.night.sites["carcassonne"]
    path = f"/admin/roster?site_id={site_id}&week={WEEK}"
    week = coordinator.get(path).text
    csrf = csrf_of(week)
    # The seeded Tuesday night is covered; the nights around it are not.
    assert "has-gap" not in cell(week, "2026-11-24")
    assert "Covered" in cell(week, "2026-11-24")
    for day in ("2026-11-23", "2026-11-25", "2026-11-29"):
        assert 'data-gap="18:30\u201308:00"' in cell(week, day), day
    assert re.search(r'data-radiologist="Dr Alice Martin">.*?data-day="2026-11-24">\s*'
                     r'<div class="shift" data-shift-id="\d+">\s*18:30\u201308:00', week, re.S)
    # David's Imadis shift does not count: he is not credentialed for Carcassonne.
    david = re.search(r'data-radiologist="Dr David Noir">(.*?)</tr>', week, re.S)
    assert david
    assert "not credentialed for this site" in david.group(1)
    assert "not credentialed" not in week.split('data-radiologist="Dr Alice Martin">')[1][:200]
    # Monday's 00:00-08:00 is Sunday's night still running: a gap too.
    assert 'data-gap="00:00\u201308:00"' in cell(week, "2026-11-23")

    # Deleting Tuesday night's primaries credentialed for Carcassonne opens a gap.
    tuesday_shifts = re.findall(r'data-day="2026-11-24">\s*<div class="shift" '
                                r'data-shift-id="(\d+)"', week)
    assert len(tuesday_shifts) >= 3
    for shift_id in tuesday_shifts:
        answer = coordinator.post(f"/admin/roster/shifts/{shift_id}/delete", data={
            "csrf_token": csrf, "site_id": str(site_id), "week": WEEK})
        assert answer.status_code == 303
    week = coordinator.get(path).text
    assert 'data-gap="18:30\u201308:00"' in cell(week, "2026-11-24")

    # A shift with bad input: the error beside the form, refilled, nothing added.
    before = counts(env)
    alice = str(env.night.radiologists["dr_alice"])
    imadis = re.search(r'<option value="(\d+)"[^>]*>Imadis</option>', week)
    assert imadis
    refused = coordinator.post("/admin/roster/shifts", data={
        "csrf_token": csrf, "site_id": str(site_id), "week": WEEK, "radiologist_id": alice,
        "team_id": imadis.group(1), "day": "25/11/2026", "start": "18:30", "end": "08:00"})
    assert refused.status_code == 400
    assert "The shift was not added" in alert_of(refused.text)
    assert 'value="25/11/2026"' in refused.text
    assert counts(env) == before

    # Wednesday's night filled from the page: its gap goes.
    added = coordinator.post("/admin/roster/shifts", data={
        "csrf_token": csrf, "site_id": str(site_id), "week": WEEK, "radiologist_id": alice,
        "team_id": imadis.group(1), "day": "2026-11-25", "start": "18:30", "end": "08:00",
        "role": "primary"})
    assert added.status_code == 303
    week = coordinator.get(added.headers["location"]).text
    assert "Shift added." in week
    assert "has-gap" not in cell(week, "2026-11-25")
    with transaction(env.runtime.sessions, readonly=True) as session:
        row = session.scalars(select(ShiftRow).order_by(ShiftRow.id.desc())).first()
        assert row is not None
        assert (row.ends_at - row.starts_at).total_seconds() == 13.5 * 3600

    # An import: a bad line imports nothing; a good file fills Thursday.
    before = counts(env)
    bad = coordinator.post("/admin/roster/import", data={
        "csrf_token": csrf, "site_id": str(site_id), "week": WEEK}, files={"file": (
            "roster.csv", b"radiologist,team,start,end,role\n"
            b"Dr Alice Martin,Imadis,2026-11-26T18:30,2026-11-27T08:00,primary\n"
            b"Dr Nobody,Imadis,2026-11-27T18:30,2026-11-28T08:00,primary\n", "text/csv")})
    assert bad.status_code == 400
    assert "line 3: no radiologist named 'Dr Nobody'" in alert_of(bad.text)
    assert counts(env) == before
    good = coordinator.post("/admin/roster/import", data={
        "csrf_token": csrf, "site_id": str(site_id), "week": WEEK}, files={"file": (
            "roster.csv", b"radiologist,team,start,end,role\n"
            b"Dr Chlo\xc3\xa9 Roux,Occitanie,2026-11-26T18:30,2026-11-27T08:00,primary\n",
            "text/csv")})
    assert good.status_code == 303
    week = coordinator.get(good.headers["location"]).text
    assert "1 shift(s) imported." in week
    assert "has-gap" not in cell(week, "2026-11-26")
    assert "has-gap" in cell(week, "2026-11-27")
    calendar = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
                "UID:friday@test\r\nDTSTAMP:20261101T000000Z\r\n"
                "DTSTART;TZID=Europe/Paris:20261127T183000\r\n"
                "DTEND;TZID=Europe/Paris:20261128T080000\r\nSUMMARY:Dr Emma Blanc\r\n"
                "LOCATION:Imadis\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    ics = coordinator.post("/admin/roster/import", data={
        "csrf_token": csrf, "site_id": str(site_id), "week": WEEK},
        files={"file": ("roster.ics", calendar.encode(), "text/calendar")})
    assert ics.status_code == 303
    week = coordinator.get(ics.headers["location"]).text
    assert "has-gap" not in cell(week, "2026-11-27")
    assert re.search(r'data-radiologist="Dr Emma Blanc">.*?data-day="2026-11-27">\s*'
                     r'<div class="shift"', week, re.S)


def test_the_week_defaults_to_the_current_one_and_moves(env: Env, browsers: Browsers) -> None:
    coordinator = browsers("coordinator")
    week = coordinator.get("/admin/roster").text  # first site by name: CH Carcassonne
    assert "Duty roster of CH Carcassonne, week of 23/11/2026" in week
    assert 'aria-current="date" class="today">Tue 24/11' in week
    assert 'week=2026-11-16" rel="prev"' in week
    assert 'week=2026-11-30" rel="next"' in week
    later = coordinator.get(f"/admin/roster?site_id={env.night.sites['narbonne']}"
                            "&week=2026-12-02").text
    assert "Duty roster of CH Narbonne, week of 30/11/2026" in later
    assert "has-gap" in cell(later, "2026-11-30")


# --- Users and roles -------------------------------------------------------------------------

def _sign_in(http: httpx.Client, username: str, password: str = PASSWORD,
             code: str = "") -> httpx.Response:
    page = http.get("/signin")
    return http.post("/signin", data={"username": username, "password": password,
                                      "code": code, "csrf_token": csrf_of(page.text)})


def test_accounts_are_created_changed_and_closed(env: Env, browsers: Browsers) -> None:
    admin = browsers("admin")
    csrf = csrf_of(admin.get("/admin/users").text)
    carcassonne = str(env.night.sites["carcassonne"])
    before = counts(env)
    short = admin.post("/admin/users", data={
        "csrf_token": csrf, "username": "tech_limoux", "display_name": "Tech Limoux",
        "role": "technologist", "password": "short", "site_ids": [carcassonne]})
    assert short.status_code == 400
    assert "at least 12 characters" in alert_of(short.text)
    assert 'value="tech_limoux"' in short.text
    assert "short" not in re.findall(r'name="password"[^>]*>', short.text)[0]
    assert counts(env) == before

    created = admin.post("/admin/users", data={
        "csrf_token": csrf, "username": "tech_limoux", "display_name": "Tech Limoux",
        "role": "technologist", "password": "a long enough password", "site_ids": [
            carcassonne]})
    assert created.status_code == 303
    user_path = created.headers["location"].split("?")[0]
    listing = admin.get("/admin/users").text
    assert re.search(r'data-username="tech_limoux">.*?Technologist.*?CH Carcassonne', listing,
                     re.S)
    newcomer = browsers(None)
    assert _sign_in(newcomer, "tech_limoux", "a long enough password").status_code == 303
    home = newcomer.get("/")
    assert home.status_code == 200
    assert "CH Carcassonne" in home.text

    # A new role and site apply at the account's next page.
    narbonne = str(env.night.sites["narbonne"])
    saved = admin.post(user_path, data={"csrf_token": csrf, "role": "requesting_physician",
                                        "site_ids": [narbonne]})
    assert saved.status_code == 303
    home = newcomer.get("/").text
    assert "requesting_physician" in home
    assert "CH Narbonne" in home

    # Deactivated: the open session ends and signing in fails.
    assert admin.post(f"{user_path}/deactivate", data={"csrf_token": csrf}).status_code == 303
    assert newcomer.get("/").status_code == 303
    assert _sign_in(browsers(None), "tech_limoux", "a long enough password").status_code == 401
    assert 'id="active">no' in admin.get(user_path).text
    assert admin.post(f"{user_path}/reactivate", data={"csrf_token": csrf}).status_code == 303
    assert _sign_in(browsers(None), "tech_limoux", "a long enough password").status_code == 303

    # An administrator cannot close their own access.
    me = f"/admin/users/{env.night.users['admin']}"
    refused = admin.post(f"{me}/deactivate", data={"csrf_token": csrf})
    assert refused.status_code == 409
    assert "your own access" in alert_of(refused.text)
    refused = admin.post(me, data={"csrf_token": csrf, "role": "coordinator"})
    assert refused.status_code == 409
    assert browsers("admin").get("/admin/users").status_code == 200


def test_a_second_factor_reset_forces_a_new_enrolment(env: Env, browsers: Browsers) -> None:
    admin = browsers("admin")
    alice_session = browsers("dr_alice")
    assert alice_session.get("/").status_code == 200
    path = f"/admin/users/{env.night.users['dr_alice']}"
    csrf = csrf_of(admin.get(path).text)
    assert admin.post(f"{path}/reset-second-factor",
                      data={"csrf_token": csrf}).status_code == 303
    assert 'id="second-factor">to set up at next sign-in' in admin.get(path).text
    assert alice_session.get("/").status_code == 303  # her sessions ended
    alice = browsers(None)
    assert _sign_in(alice, "dr_alice").status_code == 303  # the password alone now...
    home = alice.get("/").text
    assert "needs a second factor" in home  # ...opens only the enrolment
    assert alice.get("/worklist").status_code == 403
    # A radiologist's sites follow the roster: the account page says so, and keeps them.
    page = admin.get(path).text
    assert "follow the radiologist&#39;s credentials" in page
    assert admin.post(path, data={"csrf_token": csrf, "role": "radiologist",
                                  "site_ids": []}).status_code == 303
    with transaction(env.runtime.sessions, readonly=True) as session:
        assert list(session.scalars(select(UserSite.site_id).where(
            UserSite.user_id == env.night.users["dr_alice"]))) == [
            env.night.sites["carcassonne"]]


def test_the_new_account_of_a_radiologist_must_enrol_first(env: Env, browsers: Browsers) -> None:
    admin = browsers("admin")
    csrf = csrf_of(admin.get("/admin/users").text)
    assert admin.post("/admin/users", data={
        "csrf_token": csrf, "username": "dr_new", "display_name": "Dr New",
        "role": "radiologist", "password": "a long enough password"}).status_code == 303
    assert "to set up at next sign-in" in admin.get("/admin/users").text
    newcomer = browsers(None)
    assert _sign_in(newcomer, "dr_new", "a long enough password").status_code == 303
    assert "needs a second factor" in newcomer.get("/").text
    # Their code is never a way around it: an enrolled admin still needs theirs.
    assert _sign_in(browsers(None), "admin").status_code == 401
    assert _sign_in(browsers(None), "admin",
                    code=totp_code("admin", env.clock.now())).status_code == 303


# --- The audit trail -------------------------------------------------------------------------

def test_the_audit_search_finds_a_patients_events_and_is_itself_audited(
        env: Env, browsers: Browsers) -> None:
    exam = env.api("er_carcassonne").ok("POST", "/api/requests",
                                        request_body(env, patient_id="PAT777"))
    env.api("coordinator").ok("GET", f"/api/exams/{exam['id']}")
    env.api("er_carcassonne").ok("POST", "/api/requests", request_body(env, patient_id="OTHER"))
    admin = browsers("admin")

    found = admin.get("/admin/audit", params={"identifier": "PAT777"})
    assert found.status_code == 200
    assert "Audit chain intact" in found.text
    rows = re.findall(r'<tr data-event-id="(\d+)" data-action="(\w+)">(.*?)</tr>', found.text,
                      re.S)
    assert {action for _id, action, _row in rows} == {"create", "read"}
    assert all(re.search(rf'"exam_ids?":\[?{exam["id"]}[,}}\]]', unescape(row))
               for _id, _a, row in rows)
    assert [int(i) for i, _a, _r in rows] == sorted((int(i) for i, _a, _r in rows),
                                                    reverse=True)  # newest first
    only_reads = admin.get("/admin/audit", params={"identifier": "PAT777", "action": "read",
                                                   "actor": "coordinator"}).text
    assert re.findall(r'data-action="(\w+)"', only_reads) == ["read"]
    assert "1 event(s), page 1 of 1" in only_reads
    none = admin.get("/admin/audit", params={"identifier": "PAT777", "until": "2026-11-23"})
    assert "No event matches." in none.text
    bad = admin.get("/admin/audit", params={"since": "24/11/2026"})
    assert bad.status_code == 400
    assert "YYYY-MM-DD" in alert_of(bad.text)

    # Each search above is in the trail, with its filters.
    reads = admin.get("/admin/audit", params={"action": "search", "actor": "admin"}).text
    searches = re.findall(r'data-action="search">(.*?)</tr>', reads, re.S)
    assert len(searches) == 4
    assert '"route":"admin/audit"' in unescape(searches[-1])
    assert '"identifier":"PAT777"' in unescape(searches[-1])
    # Results come a page at a time, newest first.
    with transaction(env.runtime.sessions) as session:
        for n in range(60):
            record(session, who=Who(kind="dicom", id="BULK_SCU"), action=Action.SEARCH,
                   now=env.clock.now(), detail={"n": n})
    first = admin.get("/admin/audit", params={"actor": "bulk_scu"}).text
    assert "60 event(s), page 1 of 2" in first
    assert '"n":59' in unescape(first)
    assert '"n":9}' not in unescape(first)
    second = admin.get("/admin/audit", params={"actor": "bulk_scu", "page": "2"}).text
    assert len(re.findall(r"<tr data-event-id=", second)) == 10
    assert '"n":9}' in unescape(second)
    assert 'href="/admin/audit?actor=bulk_scu&amp;page=1" rel="prev"' in second
    # A coordinator may not read the trail.
    assert browsers("coordinator").get("/admin/audit").status_code == 403


def test_a_tampered_trail_is_reported(env: Env, browsers: Browsers) -> None:
    env.api("er_carcassonne").ok("POST", "/api/requests", request_body(env))
    with transaction(env.runtime.sessions) as session:
        first = session.scalar(select(func.min(AuditEvent.id)))
        session.execute(update(AuditEvent).where(AuditEvent.id == first)
                        .values(outcome="edited"))
        session.execute(text("SELECT 1"))
    page = browsers("admin").get("/admin/audit")
    assert page.status_code == 200
    assert "Audit chain broken (1 problem(s))" in alert_of(page.text)
    assert f"#{first}" in page.text
