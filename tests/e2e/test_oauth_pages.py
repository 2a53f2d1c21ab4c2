"""Signing up and in with Google or GitHub from the website (simulated providers)."""

from __future__ import annotations

import re
import uuid

from playwright.async_api import BrowserContext, expect

from tests.e2e.conftest import Tab
from tests.harness import ApiServer
from tests.integration.accounts.oauth_provider import GitHubUser, GoogleUser, OAuthProvider


async def test_sign_up_with_github_then_sign_in_with_google(
    context: BrowserContext, site: ApiServer, oauth_sim: OAuthProvider
) -> None:
    tab = Tab(await context.new_page(), site.base_url, "oauth")
    page = tab.page
    address = f"octo-{uuid.uuid4().hex[:10]}@example.com"
    emails = [{"email": address, "primary": True, "verified": True, "visibility": "private"}]
    oauth_sim.sign_in_as("github", GitHubUser(id=int(uuid.uuid4().int % 10**9), login="octo", emails=emails))

    # A new account needs the 18+ confirmation: the form will not go without it.
    await tab.goto("/signup")
    github = page.locator("form.oauth", has_text="GitHub")
    await github.locator("button").click()
    await expect(page).to_have_url(f"{site.base_url}/signup")
    await github.locator("input[name=age_confirmed]").check()
    await github.locator("button").click()
    await page.wait_for_url(f"{site.base_url}/dashboard")
    await expect(page.locator("main")).to_contain_text(address)
    await tab.shot("github-dashboard")

    # Signed out, Google with the same verified address signs in to the same account, back where it started.
    await page.click("header button:has-text('Sign out')")
    await page.wait_for_url(f"{site.base_url}/")
    oauth_sim.sign_in_as("google", GoogleUser(sub=uuid.uuid4().hex, email=address))
    await tab.goto("/dashboard/usage")
    await page.wait_for_url(re.compile(r".*/signin\?next=/dashboard/usage$"))
    await page.click("text=Sign in with Google")
    await page.wait_for_url(f"{site.base_url}/dashboard/usage")
    await tab.goto("/dashboard/settings")
    await expect(page.locator("main")).to_contain_text(address)
    assert tab.problems == []
