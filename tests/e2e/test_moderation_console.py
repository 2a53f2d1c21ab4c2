"""The console's moderation page in Chromium: an admin finds the events of an account the policy suspended
(tests/fixtures/moderation.toml, MODERATION_STRIKES_TO_SUSPEND=8), clears a false positive and lifts the
suspension; the customer's key works again."""

from __future__ import annotations

import httpx
import pyotp
from playwright.async_api import Browser, expect

from shared.services import Services
from tests.e2e.conftest import Tab
from tests.e2e.test_console import accept_dialogs, person, sign_in
from tests.harness import ApiServer

BLOCKED_CHAT = {"model": "test-chat-local", "messages": [{"role": "user", "content": "a zorblax, quoted"}]}


async def test_an_admin_clears_a_false_positive_and_lifts_the_suspension(
    browser: Browser, site: ApiServer, services: Services
) -> None:
    admin_email, _, _ = await person(services, "admin")
    secret = pyotp.random_base32()
    await services.db.execute(
        "UPDATE accounts SET totp_secret = $2, totp_enabled_at = now() WHERE email = $1", admin_email, secret
    )
    customer_email, customer_key, _ = await person(services, "user", "2")
    auth = {"Authorization": f"Bearer {customer_key}"}
    async with httpx.AsyncClient(base_url=site.base_url) as api:
        for _ in range(8):
            assert (await api.post("/v1/chat/completions", json=BLOCKED_CHAT, headers=auth)).status_code == 400
        assert (await api.get("/v1/account", headers=auth)).json()["error"]["code"] == "account_suspended"
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(20_000)
        try:
            tab = Tab(await context.new_page(), site.base_url, "console-moderation")
            page = tab.page
            await accept_dialogs(page)
            await sign_in(tab, admin_email, "/console/moderation", secret)
            await page.fill("#moderation-filters input[name=account]", customer_email)
            await page.click("#moderation-filters button[type=submit]")
            events = page.locator("#moderation-events tbody tr")
            await expect(events).to_have_count(8)
            await expect(events.first).to_contain_text("a zorblax, quoted")
            await expect(page.locator("#moderated-account")).to_contain_text("suspended")
            await events.first.locator("input[name=reason]").fill("a quotation, not a threat")
            await events.first.locator("button[type=submit]").click()
            await expect(page.locator("#flash")).to_have_text("Event cleared.")
            await expect(page.locator("#moderation-events tbody tr")).to_have_count(7)  # open events only
            await tab.shot("moderation")
            await page.fill("#lift-suspension input[name=reason]", "appeal accepted")
            await page.click("#lift-suspension button[type=submit]")
            await expect(page.locator("#flash")).to_have_text("Suspension lifted.")
            await expect(page.locator("#moderated-account")).to_contain_text("active")
            assert tab.problems == []
        finally:
            await context.close()
        assert (await api.get("/v1/account", headers=auth)).status_code == 200
