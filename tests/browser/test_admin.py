"""The administration in a real browser, as the administrator walks through it: overview,
sites and devices, contracts, teams, radiologists, the roster's week (a gap filled from its
own link), users, the audit trail — every page checked by axe-core."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from playwright.sync_api import Page, expect

from telerad.delivery.worker import deliver_due
from tests.browser.conftest import sign_in, snapshot
from tests.integration.test_admin_deliveries import Refusing, _signed_with_recipients
from tests.integration.workflow_env import Env

MRRT = Path(__file__).resolve().parents[1] / "data" / "mrrt"


def test_the_administrator_walks_through_the_administration(env: Env, page: Page) -> None:
    sign_in(page, env, "admin")
    page.get_by_role("link", name="Administration").click()
    sections = page.get_by_role("navigation", name="Administration sections")
    expect(page.get_by_role("heading", name="Administration")).to_be_visible()
    snapshot(page, "admin-overview")

    # Sites and devices: a new scanner's AE title.
    sections.get_by_role("link", name="Sites and devices").click()
    snapshot(page, "admin-sites")
    page.get_by_role("link", name="CH Carcassonne").click()
    page.get_by_role("textbox", name="AE title").fill("CT_URG_2")
    page.get_by_role("button", name="Add the device").click()
    expect(page.get_by_role("status")).to_contain_text("accepted from its next association")
    expect(page.locator('li[data-ae-title="CT_URG_2"]')).to_be_visible()
    page.get_by_role("textbox", name="AE title").fill("CT_NARBO")  # another site's: refused
    page.get_by_role("button", name="Add the device").click()
    expect(page.get_by_role("alert")).to_contain_text("The device was not added")
    expect(page.get_by_role("textbox", name="AE title")).to_have_value("CT_NARBO")
    snapshot(page, "admin-site")

    sections.get_by_role("link", name="Contracts").click()
    expect(page.locator('tr[data-modality="CT"]').first).to_contain_text("every day")
    snapshot(page, "admin-contracts")

    sections.get_by_role("link", name="Teams").click()
    page.get_by_role("textbox", name="Name").fill("GHT Aude")
    page.get_by_role("combobox", name="Kind").select_option("group")
    page.get_by_role("button", name="Add a team").click()
    expect(page.locator('tr[data-team="GHT Aude"]')).to_contain_text("Hospital group")
    snapshot(page, "admin-teams")

    sections.get_by_role("link", name="Radiologists").click()
    expect(page.locator('tr[data-radiologist="Dr Alice Martin"]')).to_contain_text("dr_alice")
    snapshot(page, "admin-radiologists")

    # The roster's week: Wednesday night is a gap; its own link fills the form.
    sections.get_by_role("link", name="Duty roster").click()
    wednesday = page.locator('td.coverage[data-day="2026-11-25"]')
    expect(wednesday.locator(".gap")).to_contain_text("Gap 18:30\u201308:00")
    expect(page.locator('td.coverage[data-day="2026-11-24"]')).to_contain_text("Covered")
    snapshot(page, "admin-roster")
    wednesday.get_by_role("link", name="Add a shift").click()
    expect(page.get_by_label("Day")).to_have_value("2026-11-25")
    page.get_by_role("combobox", name="Radiologist").select_option(label="Dr Alice Martin")
    page.get_by_role("combobox", name="Team").select_option(label="Imadis")
    page.get_by_role("button", name="Add a shift").click()
    expect(page.get_by_role("status")).to_contain_text("Shift added.")
    expect(wednesday.locator(".gap")).to_have_count(0)
    expect(wednesday).to_contain_text("Covered")
    expect(page.locator('td.coverage[data-day="2026-11-26"] .gap')).to_have_count(1)

    # Users: a new technologist.
    sections.get_by_role("link", name="Users and roles").click()
    page.get_by_role("textbox", name="Username").fill("tech_limoux")
    page.get_by_role("textbox", name="Display name").fill("Tech Limoux")
    page.get_by_role("combobox", name="Role").select_option("technologist")
    page.get_by_label("Initial password").fill("a long enough password")
    page.get_by_label("CH Carcassonne").check()
    page.get_by_role("button", name="Create an account").click()
    expect(page.get_by_role("status")).to_contain_text("Account created.")
    expect(page.locator("#active")).to_have_text("yes")
    snapshot(page, "admin-user")
    sections.get_by_role("link", name="Users and roles").click()
    expect(page.locator('tr[data-username="tech_limoux"]')).to_contain_text("Technologist")
    snapshot(page, "admin-users")

    # The audit trail: what the administrator just did, the chain verified.
    sections.get_by_role("link", name="Audit trail").click()
    page.get_by_role("textbox", name="Actor").fill("admin")
    page.get_by_role("combobox", name="Action").select_option("create")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#chain")).to_contain_text("Audit chain intact")
    expect(page.locator("tr[data-action]")).to_have_count(4)  # device, team, shift, account
    expect(page.locator("tr[data-action]").first).to_contain_text('"what":"account"')
    snapshot(page, "admin-audit")


def test_the_coordinator_keeps_where_reports_go(env: Env, page: Page) -> None:
    """A site's recipients and settings, the templates, the undelivered reports."""
    exam = _signed_with_recipients(env)
    while deliver_due(env.runtime.sessions, env.clock,
                      {"hl7_mllp": Refusing(), "dicom_store": Refusing()},
                      calling_ae_title="TELERAD", max_backoff=dt.timedelta(minutes=5)):
        pass
    sign_in(page, env, "coordinator")
    page.goto(env.server.base_url + f"/admin/sites/{env.night.sites['carcassonne']}")
    page.get_by_role("combobox", name="Channel").select_option("hl7_mllp")
    page.get_by_role("textbox", name="Name", exact=True).fill("RIS secours")
    host = page.get_by_role("textbox", name="Host (name or IP address)")
    host.fill("ris2 example")
    page.get_by_role("textbox", name="Port", exact=True).fill("2575")
    page.get_by_role("button", name="Add the recipient").click()
    expect(page.get_by_role("alert").first).to_contain_text("The recipient was not added")
    expect(page.locator("#endpoint-host-error")).to_have_text(
        "A host name or an address, without spaces.")
    host.fill("ris2.example")
    page.get_by_role("button", name="Add the recipient").click()
    expect(page.get_by_role("status")).to_contain_text("Recipient added")
    page.get_by_role("textbox", name="HL7 facility of the RIS (MSH-4)").fill("CH_CARCA")
    page.get_by_role("button", name="Save the settings").click()
    expect(page.get_by_role("status")).to_contain_text("Report settings saved.")
    expect(page.locator('tr[data-channel="hl7_mllp"]')).to_have_count(2)
    snapshot(page, "admin-site-recipients")

    sections = page.get_by_role("navigation", name="Administration sections")
    sections.get_by_role("link", name="Report templates").click()
    expect(page.locator('tr[data-code="ct_head"]')).to_contain_text("built in")
    page.get_by_label("Template file").set_input_files(str(MRRT / "ct_pe_ihe.html"))
    page.get_by_role("button", name="Import the template").click()
    expect(page.get_by_role("status")).to_contain_text("imported")
    snapshot(page, "admin-templates")
    page.get_by_label("Template file").set_input_files(str(MRRT / "broken.html"))
    page.get_by_role("button", name="Import the template").click()
    expect(page.get_by_role("alert").first).to_contain_text("The template was not imported")
    snapshot(page, "admin-templates-refused")

    sections.get_by_role("link", name="Undelivered reports").click()
    row = page.locator(f'tr[data-exam-id="{exam["id"]}"]')
    expect(row).to_contain_text("delivery failed: send it again")
    snapshot(page, "admin-deliveries")
    row.get_by_role("button", name="Send again").first.click()
    expect(page.get_by_role("status")).to_contain_text("Delivery restarted")
