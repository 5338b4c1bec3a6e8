"""Signing in from a real browser: a radiologist new to telerad signs in with the password,
can do nothing before enrolling an authenticator app from its QR page, then signs in again
with a code; keyboard only."""

from __future__ import annotations

import datetime as dt

import pyotp
from playwright.sync_api import Page, expect

from telerad.auth.models import Role
from telerad.auth.users import create_user
from telerad.db import transaction
from tests.browser.conftest import snapshot
from tests.integration.workflow_env import Env

PASSWORD = "correct horse battery"


def test_sign_in_enrol_a_second_factor_and_sign_in_with_it(env: Env, page: Page) -> None:
    with transaction(env.runtime.sessions) as session:  # a new radiologist: no app yet
        create_user(session, username="dr_new", display_name="Dr New", password=PASSWORD,
                    role=Role.RADIOLOGIST, site_ids=[], now=env.clock.now())
    page.goto(env.server.base_url + "/")
    expect(page).to_have_url(env.server.base_url + "/signin")
    snapshot(page, "signin")
    # Keyboard only: the username field has the focus, Tab moves on, Enter submits.
    page.keyboard.type("dr_new")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Signed in as")).to_be_visible()
    expect(page.get_by_text("The second factor is off.")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("Your role needs a second factor")
    expect(page.get_by_role("link", name="Worklist")).to_have_count(0)
    snapshot(page, "account")
    assert page.request.get(env.server.base_url + "/worklist").status == 403

    page.get_by_role("button", name="Set up an authenticator app").click()
    secret = page.locator("#secret").inner_text()
    expect(page.get_by_role("img", name="QR code")).to_be_visible()
    snapshot(page, "second-factor")
    page.get_by_label("Authenticator app code").fill("000000")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("alert")).to_contain_text("does not match")
    page.get_by_label("Authenticator app code").fill(pyotp.TOTP(secret).at(env.clock.now()))
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("status")).to_contain_text("Second factor on")
    expect(page.get_by_text("The second factor is on.")).to_be_visible()
    expect(page.get_by_role("link", name="Worklist")).to_be_visible()  # now they may work

    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page).to_have_url(env.server.base_url + "/signin")
    page.get_by_label("Username").fill("dr_new")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Enter the code")
    snapshot(page, "signin-code-required")
    env.clock.advance(dt.timedelta(seconds=30))
    page.get_by_label("Username").fill("dr_new")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Authenticator app code").fill(pyotp.TOTP(secret).at(env.clock.now()))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Signed in as")).to_be_visible()
