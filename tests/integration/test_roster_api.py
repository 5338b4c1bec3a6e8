"""The coordinator keeps the set-up through the API: teams, contracts, radiologists, shifts
(one by one, or a CSV or iCalendar file), gaps in coverage, protocols."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.integration.workflow_env import Env, env

__all__ = ["env"]

ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//roster//EN
BEGIN:VEVENT
UID:night-1@test
DTSTART;TZID=Europe/Paris:20261201T183000
DTEND;TZID=Europe/Paris:20261202T080000
SUMMARY:Dr Nina Vidal
LOCATION:Sud
END:VEVENT
BEGIN:VEVENT
UID:night-2@test
DTSTART;TZID=Europe/Paris:20261202T183000
DTEND;TZID=Europe/Paris:20261203T080000
SUMMARY:Dr Nina Vidal (backup)
LOCATION:Sud
END:VEVENT
END:VCALENDAR
"""


def test_the_set_up_through_the_api(env: Env) -> None:
    coordinator = env.api("coordinator")
    team = coordinator.ok("POST", "/api/teams", {"name": "Sud", "kind": "region"})
    assert {"name": "Sud", "kind": "region"}.items() <= team.items()
    status, answer = coordinator.call("POST", "/api/teams", {"name": "Sud", "kind": "region"})
    assert (status, answer["error"]) == (409, "conflict")
    site = coordinator.ok("GET", "/api/sites")[0]
    status, answer = coordinator.call("POST", f"/api/sites/{site['id']}/contracts", {
        "modality": "MR", "windows": ["weekdays 08:00-18:30"], "teams": ["Sud"],
        "targets": {"scheduled": 2880}})
    assert status == 201, answer
    assert answer["targets"]["scheduled"] == 2880
    assert answer["teams"] == ["Sud"]
    status, answer = coordinator.call("POST", f"/api/sites/{site['id']}/contracts", {
        "modality": "MR", "windows": ["weekdays 8-18"], "teams": ["Sud"]})
    assert status == 400
    assert "HH:MM" in answer["message"]
    modalities = [c["modality"] for c in coordinator.ok(
        "GET", f"/api/sites/{site['id']}/contracts")]
    assert modalities == ["CT", "MR"]
    nina = coordinator.ok("POST", "/api/radiologists", {
        "name": "Dr Nina Vidal", "site_ids": [site["id"]], "subspecialties": ["MSK"]})
    assert nina["subspecialties"] == ["msk"]
    # Shifts: a file (iCalendar), then one by one; all or none.
    status, answer = coordinator.call("POST", "/api/shifts/import", raw=ICS.encode(),
                                      content_type="text/calendar")
    assert (status, answer) == (200, {"imported": 2})
    bad_csv = ("radiologist,team,start,end,role\n"
               "Dr Nina Vidal,Sud,2026-12-05T18:30,2026-12-06T08:00,primary\n"
               "Dr Nobody,Sud,2026-12-06T18:30,2026-12-07T08:00,primary\n")
    status, answer = coordinator.call("POST", "/api/shifts/import", raw=bad_csv.encode(),
                                      content_type="text/csv")
    assert status == 400
    assert "line 3" in answer["message"]
    shifts = _shifts(coordinator, "2026-12-01T00:00:00+01:00", "2026-12-08T00:00:00+01:00")
    assert [(s["role"], s["start"]) for s in shifts] == [
        ("primary", "2026-12-01T17:30:00Z"), ("backup", "2026-12-02T17:30:00Z")]
    added = coordinator.ok("POST", "/api/shifts", {
        "radiologist_id": nina["id"], "team_id": team["id"],
        "start": "2026-12-03T18:30:00+01:00", "end": "2026-12-04T08:00:00+01:00"})
    status, answer = coordinator.call("POST", "/api/shifts", {
        "radiologist_id": nina["id"], "team_id": team["id"],
        "start": "2026-12-03T18:30:00+01:00", "end": "2026-12-07T08:00:00+01:00"})
    assert status == 400
    assert "72 hours" in answer["message"]
    assert coordinator.call("DELETE", f"/api/shifts/{added['id']}")[0] == 204
    assert coordinator.call("DELETE", f"/api/shifts/{added['id']}")[0] == 404
    # Gaps: the MR contract covers weekdays 08:00-18:30; Nina's nights do not count, her
    # Wednesday day shift does.
    coordinator.ok("POST", "/api/shifts", {
        "radiologist_id": nina["id"], "team_id": team["id"],
        "start": "2026-12-02T08:00:00+01:00", "end": "2026-12-02T18:30:00+01:00"})
    gaps = coordinator.ok("GET", f"/api/roster/gaps?site_id={site['id']}&modality=MR&days=3"
                                 "&start=2026-12-01T00:00:00%2B01:00")
    assert [(g["start"], g["end"]) for g in gaps] == [
        ("2026-12-01T07:00:00Z", "2026-12-01T17:30:00Z"),
        ("2026-12-03T07:00:00Z", "2026-12-03T17:30:00Z")]
    # Protocols: the catalogue, and one more.
    codes = [p["code"] for p in coordinator.ok("GET", "/api/protocols")]
    assert "CT_STROKE" in codes
    coordinator.ok("POST", "/api/protocols", {"code": "MR_KNEE", "name": "MRI knee",
                                              "modality": "MR", "subspecialty": "msk",
                                              "expected_series": ["pd fs"]})
    # Hospital staff and radiologists cannot change the set-up.
    for username in ("tech_carcassonne", "dr_alice", "manager_carcassonne"):
        status, _ = env.api(username).call("POST", "/api/teams", {"name": "X", "kind": "local"})
        assert status == 403


def _shifts(api: Any, start: str, end: str) -> list[dict[str, Any]]:
    return list(api.ok("GET", f"/api/shifts?start={quote(start)}&end={quote(end)}"))
