"""The reading page in a real browser: the radiologist types the report beside OHIF; what is
typed survives a reload and a network blip, a draft saved from another tab is never
overwritten, a required field left empty is named beside it when signing, the signed final
is listed with its PDF, and a critical call is recorded only once read back. The page is
screenshotted at 1366 by 768 and checked by axe-core."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import sign_in, snapshot
from tests.integration.workflow_env import Env, ready_exam

#: Saving waits ~800 ms after the last keystroke; after a blip, retries are at most 15 s apart.
SAVED = 20_000


def _claimed(env: Env) -> dict[str, Any]:
    """A CT head (template ct_head) with its images, claimed by Alice."""
    exam = ready_exam(env)
    env.api("dr_alice").ok("POST", f"/api/exams/{exam['id']}/claim")
    return exam


def _server_conclusion(env: Env, exam_id: int) -> str:
    draft = env.api("dr_alice").ok("GET", f"/api/exams/{exam_id}/report")["draft"]
    return str(draft.get("conclusion", ""))


def _conclusion(page: Page) -> Locator:
    return page.get_by_role("textbox", name="Conclusion")


def _status(page: Page) -> Locator:
    return page.locator("#save-status")


def test_the_report_is_typed_saved_signed_and_the_critical_call_recorded(
        env: Env, page: Page) -> None:
    exam = _claimed(env)
    url = env.server.base_url + f"/exams/{exam['id']}/read"
    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in(page, env, "dr_alice")
    page.goto(url)
    expect(page.frame_locator("iframe").locator("body")).to_be_attached()
    # The template of the protocol, the normal findings filled in, the required field marked.
    expect(page.get_by_role("combobox", name="Hémorragie intracrânienne")).to_have_value(
        "absente")
    expect(_conclusion(page)).to_have_attribute("aria-required", "true")
    expect(_conclusion(page)).not_to_have_value("")

    # Typed, saved by itself, still there after a reload.
    first = "Hématome sous-dural aigu droit de 8 mm."
    _conclusion(page).fill(first)
    expect(_status(page)).to_contain_text("Saved at", timeout=SAVED)
    assert _server_conclusion(env, exam["id"]) == first
    # The report began at the first keystroke: the request's indication came with it.
    expect(page.get_by_role("textbox", name="Indication")).to_have_value(
        "fall at home intracranial bleeding?")
    page.reload()
    expect(_conclusion(page)).to_have_value(first)

    # A network blip: the typing waits on this computer, then goes by itself.
    page.context.set_offline(True)
    second = first + " Effet de masse modéré."
    _conclusion(page).fill(second)
    expect(_status(page)).to_contain_text("Offline", timeout=SAVED)
    assert _server_conclusion(env, exam["id"]) == first
    page.context.set_offline(False)
    expect(_status(page)).to_contain_text("Saved at", timeout=SAVED)
    assert _server_conclusion(env, exam["id"]) == second
    page.reload()
    expect(_conclusion(page)).to_have_value(second)

    # Saved meanwhile from another tab: this one says so and overwrites nothing.
    other = page.context.new_page()
    other.goto(url)
    third = second + " (relu dans l'autre onglet)"
    _conclusion(other).fill(third)
    expect(_status(other)).to_contain_text("Saved at", timeout=SAVED)
    other.close()
    _conclusion(page).fill(second + " et ici")
    expect(_status(page)).to_contain_text("changed elsewhere", timeout=SAVED)
    assert _server_conclusion(env, exam["id"]) == third
    page.get_by_role("button", name="Reload the saved version").click()
    expect(_conclusion(page)).to_have_value(third)
    older = page.locator("#older-typing")  # what this tab had typed, shown, not applied
    expect(older).to_be_visible()
    older.get_by_text("Show these changes").click()
    expect(older).to_contain_text(second + " et ici")
    older.get_by_role("button", name="Forget these changes").click()
    expect(older).to_be_hidden()

    # A critical finding: the browser refuses the call until it was read back.
    form = page.locator("#new-finding")
    form.get_by_label("Critical finding seen").fill("Hématome sous-dural avec engagement")
    form.get_by_label("Person called", exact=True).fill("Dr Urgentiste")
    form.get_by_label("Phone").fill("04 68 00 00 00")
    form.get_by_label("What was said").fill("HSD aigu droit de 8 mm, engagement sous-falcoriel")
    form.get_by_role("button", name="Record the critical finding and the call").click()
    read_back = form.get_by_label("Read back by the person called")
    assert read_back.evaluate("box => box.validity.valueMissing")
    expect(page.locator("#findings-list")).to_contain_text("No critical finding told.")
    read_back.check()
    form.get_by_role("button", name="Record the critical finding and the call").click()
    findings = page.locator("#findings-list")
    expect(findings).to_contain_text("Hématome sous-dural avec engagement")
    expect(findings).to_contain_text("Waiting — due at")
    expect(findings).to_contain_text("Call to Dr Urgentiste (04 68 00 00 00)")
    expect(form.get_by_label("Person called", exact=True)).to_have_value("")
    snapshot(page, "reading")

    # A preliminary for the emergency doctor at once; the report stays open.
    page.get_by_role("button", name="Issue a preliminary report").click()
    expect(_status(page)).to_contain_text("Preliminary report issued.")
    expect(page.locator("#versions-list")).to_contain_text("Version 1 — Preliminary")
    expect(page.get_by_role("button", name="Issue a preliminary report")).to_have_count(0)

    # Signing with the required conclusion empty: named beside it, nothing signed.
    _conclusion(page).fill("")
    expect(_status(page)).to_contain_text("Saved at", timeout=SAVED)
    page.get_by_role("button", name="Sign the final report").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("can no longer be changed")
    dialog.get_by_role("button", name="Sign for good").click()
    expect(page.locator("#error-conclusion")).to_have_text("Required to sign.")
    expect(_conclusion(page)).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#release-error")).to_contain_text("Nothing was issued or signed")
    versions = env.api("dr_alice").ok("GET", f"/api/exams/{exam['id']}/report")["versions"]
    assert [v["kind"] for v in versions] == ["preliminary"]

    # Filled: the final is signed, listed with its PDF; the page now offers the addendum.
    _conclusion(page).fill(third)
    page.get_by_role("button", name="Sign the final report").click()
    page.get_by_role("dialog").get_by_role("button", name="Sign for good").click()
    expect(page.get_by_role("status").filter(has_text="Final report signed.")).to_be_visible()
    versions = page.locator("#versions-list")
    expect(versions).to_contain_text("Version 2 — Final")
    expect(versions).to_contain_text("signed by Dr Alice MARTIN")
    expect(versions).to_contain_text("Hématome sous-dural aigu droit de 8 mm.")
    link = versions.get_by_role("link", name="PDF of version 2")
    pdf = page.request.get(env.server.base_url + str(link.get_attribute("href")))
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.body().startswith(b"%PDF")
    assert env.api("dr_alice").ok("GET", f"/api/exams/{exam['id']}")["state"] in (
        "final", "delivered")

    # A correction after the final: an addendum, saved as typed, signed, listed.
    addendum = page.get_by_role("textbox", name="Addendum")
    addendum.fill("Pas de fracture associée.")
    expect(_status(page)).to_contain_text("Saved at", timeout=SAVED)
    page.get_by_role("button", name="Sign the addendum").click()
    expect(_status(page)).to_contain_text("Addendum signed.")
    expect(versions).to_contain_text("Version 3 — Addendum")
    expect(addendum).to_have_value("")
