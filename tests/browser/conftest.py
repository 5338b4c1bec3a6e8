"""Browser tests: Playwright (Python) drives Debian's Chromium (installed by ./dev setup;
Playwright's own browser download does not work here). Screenshots of each page go to
``test-artifacts/screenshots/``; every page is checked with axe-core."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect, sync_playwright

from telerad.auth.models import Role
from telerad.auth.second_factor import REQUIRED_FOR
from telerad.testing.workflow import PASSWORD, RADIOLOGISTS, STAFF, totp_code
from tests.integration.workflow_env import Env, env

__all__ = ["env"]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def snapshot(page: Page, name: str) -> None:
    """Save a screenshot of the page, and fail on any accessibility violation axe-core
    finds (labels, contrast, landmarks, keyboard traps...)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    results = Axe().run(page)
    violations = results.response["violations"]
    assert violations == [], results.generate_report()


def _needs_code(username: str) -> bool:
    roles = {name: role for name, role, _sites in STAFF}
    roles.update({name: Role.RADIOLOGIST for name, *_rest in RADIOLOGISTS})
    return roles[username] in REQUIRED_FOR


def sign_in(page: Page, env: Env, username: str) -> None:
    """Sign in from the sign-in page as a seeded account (with its authenticator code when
    its role needs one), and land on the home page."""
    page.goto(env.server.base_url + "/signin")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    if _needs_code(username):
        page.get_by_label("Authenticator app code").fill(totp_code(username, env.clock.now()))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Signed in as")).to_be_visible()


def fill_request(page: Page, *, question: str, egfr: str, exam: str,
                 patient_id: str = "PAT001") -> None:
    """Fill the portal's request form for DUPONT Marie (urgency and pregnancy left)."""
    page.get_by_label("Family name").fill("DUPONT")
    page.get_by_label("Given name").fill("MARIE")
    page.get_by_label("Patient ID (hospital)").fill(patient_id)
    page.get_by_label("Birth date").fill("1958-03-12")
    page.get_by_label("Sex").select_option("F")
    page.get_by_label("Requesting physician").fill("Dr Urgentiste")
    page.get_by_label("Clinical context").fill("fall at home")
    page.get_by_label("Clinical question").fill(question)
    page.get_by_label("eGFR").fill(egfr)
    page.get_by_label("Exam asked").fill(exam)
