"""Every word the administration pages ask for exists, in both languages (a missing key
would render as an empty string, silently)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from telerad.audit.service import Action
from telerad.auth.models import Role
from telerad.web.i18n import TEXTS
from telerad.workflow.roster.rules import DayKind
from telerad.workflow.sites.models import TeamKind, Urgency

WEB = Path(__file__).resolve().parents[2] / "src" / "telerad" / "web"


def _named_keys() -> set[str]:
    found: set[str] = set()
    pages = [p for p in (WEB / "admin").glob("*.py") if p.name != "texts.py"]
    for path in [*WEB.glob("templates/admin*.html"), *pages]:
        source = path.read_text()
        if path.suffix == ".html":  # in Python, t may be a team
            found |= set(re.findall(r"\bt\.(\w+)", source))
        found |= set(re.findall(r'\bt\["(\w+)"\]', source))
        found |= set(re.findall(r'"(admin_\w+)"', source)) - {"admin_page"}
    # Prefixes completed by a value (below), and the dict's own method.
    return {k for k in found if not k.endswith("_") and k != "get"}


def _built_keys() -> set[str]:
    """Keys the templates build from a value: ``t["admin_role_" ~ role]`` and the like."""
    return ({f"admin_role_{r}" for r in Role} | {f"admin_kind_{k}" for k in TeamKind}
            | {f"admin_action_{a}" for a in Action} | {f"urgency_{u}" for u in Urgency}
            | {f"admin_days_{d}" for d in ("every", "weekdays", "weekends", *DayKind)}
            | {f"admin_weekday_{n}" for n in range(7)}
            | {f"{key}_hint" for key in ("admin_sites", "admin_contracts", "admin_teams",
                                         "admin_radiologists", "admin_roster", "admin_users",
                                         "admin_audit")})


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_every_word_of_the_administration_exists(lang: str) -> None:
    wanted = _named_keys() | _built_keys()
    assert len(wanted) > 150
    missing = sorted(k for k in wanted if not TEXTS[lang].get(k))
    assert missing == []
