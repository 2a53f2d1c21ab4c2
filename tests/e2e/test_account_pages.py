"""Keys, the chat playground, promo codes, sessions and sign-out, on a phone-sized screen."""

from __future__ import annotations

import re
import uuid

import httpx
from playwright.async_api import Browser, Dialog, expect

from shared.accounts.rewards import create_promo_code
from shared.services import Services
from tests.e2e.conftest import Tab, first_link, outbox_mail
from tests.harness import ApiServer, InProcessWorker

PASSWORD = "Phone screen pass 9"
NEW_PASSWORD = "A brand new pass 10"
KEY = re.compile(r"^cdt_[A-Za-z0-9]{40}$")


async def verified_account(site: ApiServer) -> str:
    address = f"phone-{uuid.uuid4().hex[:10]}@example.com"
    async with httpx.AsyncClient(base_url=site.base_url) as http:
        body = {"email": address, "password": PASSWORD, "age_confirmed": True}
        assert (await http.post("/v1/auth/signup", json=body)).status_code == 202
        mail = await outbox_mail(site.settings.mail.outbox_dir, address, "Confirm your email")
        token = re.search(r"token=([A-Za-z0-9_-]+)", mail)
        assert token
        assert (await http.get("/v1/auth/verify-email", params={"token": token.group(1)})).status_code == 200
    return address


async def sign_in(tab: Tab, address: str, password: str, then: str) -> None:
    """Sign in from a dashboard page's redirect to the sign-in page; back on that page afterwards."""
    if "/signin" not in tab.page.url:
        await tab.goto(then)
    await tab.page.fill("#signin input[name=email]", address)
    await tab.page.fill("#signin input[name=password]", password)
    await tab.page.click("#signin button[type=submit]")
    await tab.page.wait_for_url(f"{tab.base_url}{then}")


async def test_account_pages_on_a_phone(
    browser: Browser, site: ApiServer, site_worker: InProcessWorker, services: Services
) -> None:
    del site_worker
    address = await verified_account(site)
    promo = await create_promo_code(services.db, credits=10_000_000, code=f"PHONE{uuid.uuid4().hex[:8].upper()}")
    context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    context.set_default_timeout(20_000)
    try:
        tab = Tab(await context.new_page(), site.base_url, "phone")
        page = tab.page

        async def accept(dialog: Dialog) -> None:
            await dialog.accept()

        page.on("dialog", accept)

        # A dashboard page sends a stranger to sign in, and back after it.
        await tab.goto("/dashboard/keys")
        await page.wait_for_url(f"{site.base_url}/signin?next=/dashboard/keys")
        await page.fill("#signin input[name=email]", address)
        await page.fill("#signin input[name=password]", "wrong password 1")
        await page.click("#signin button[type=submit]")
        await expect(page.locator("#signin [data-error]")).to_contain_text("email or password")
        await sign_in(tab, address, PASSWORD, "/dashboard/keys")

        # Pages fit the screen: nothing wider than the viewport but tables that scroll on their own.
        for path in ("/", "/models", "/pricing", "/dashboard", "/dashboard/usage", "/dashboard/playground"):
            await tab.goto(path)
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (path, width)
            await tab.shot(path.strip("/").replace("/", "-") or "home")

        # Keys: create, rotate (a new secret, shown once), revoke.
        await tab.goto("/dashboard/keys")
        await page.fill("#create-key input[name=name]", "phone")
        await page.click("#create-key button[type=submit]")
        await expect(page.locator("#new-secret")).to_have_text(KEY)
        first = await page.locator("#new-secret").inner_text()
        await tab.goto("/dashboard/keys")
        row = page.locator("#keys tr", has_text="phone")
        await row.locator("text=Rotate").click()
        await expect(page.locator("#new-secret")).to_have_text(KEY)
        assert await page.locator("#new-secret").inner_text() != first
        await tab.goto("/dashboard/keys")
        await row.locator("text=Revoke").click()
        await expect(page.locator("#flash")).to_have_text("Key revoked.")
        await expect(row.locator(".badge")).to_have_text("revoked")

        # The CSRF token is required: the same request without it is refused by the API.
        status = await page.evaluate(
            """async () => (await fetch('/v1/keys', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                                   body: '{"name": "no token"}'})).status"""
        )
        assert status == 403

        # The chat playground: a text model answers through the task pipeline.
        await tab.goto("/dashboard/playground")
        await page.fill("#play-chat textarea", "Hello from a phone")
        await page.click("#play-chat button[type=submit]")
        await expect(page.locator("#play-chat [data-out] pre.text-output")).not_to_be_empty()
        await expect(page.locator("#play-chat .task-status")).to_have_attribute("data-status", "succeeded")
        await tab.shot("chat")

        # Rewards: a wrong code is explained; the right one adds its credits.
        await tab.goto("/dashboard/rewards")
        before = await page.locator("#balance-available").inner_text()
        await page.fill("#promo input[name=code]", "NOSUCHCODE")
        await page.click("#promo button[type=submit]")
        await expect(page.locator("#promo [data-error]")).to_be_visible()
        await page.fill("#promo input[name=code]", promo.code)
        await page.click("#promo button[type=submit]")
        await expect(page.locator("#flash")).to_contain_text("Code claimed")
        after = await page.locator("#balance-available").inner_text()
        assert float(after.replace(",", "")) == float(before.replace(",", "")) + 10
        await expect(page.locator("#grants")).to_contain_text("promo code")

        # Settings lists this browser's session; signing out ends it.
        await tab.goto("/dashboard/settings")
        await expect(page.locator("#sessions")).to_contain_text("this browser")
        await tab.shot("settings")
        await page.click("header button:has-text('Sign out')")
        await page.wait_for_url(f"{site.base_url}/")
        await tab.goto("/dashboard")
        await page.wait_for_url(re.compile(r".*/signin\?next=/dashboard$"))

        # Forgot the password: the mail's link opens the page that sets a new one.
        await page.click("text=Forgot your password?")
        await page.fill("#reset-request input[name=email]", address)
        await page.click("#reset-request button[type=submit]")
        await expect(page.locator("#reset-request [data-out]")).to_contain_text("on its way")
        link = first_link(await outbox_mail(site.settings.mail.outbox_dir, address, "Reset your Conduit password"))
        assert link.startswith(f"{site.base_url}/reset-password?token=")
        await page.goto(link)
        await page.fill("#reset-confirm input[name=password]", NEW_PASSWORD)
        await page.click("#reset-confirm button[type=submit]")
        await expect(page.locator("#reset-confirm [data-out]")).to_contain_text("Your password was changed")

        # Delete the account (with the new password): signed out, and the address no longer signs in.
        await sign_in(tab, address, NEW_PASSWORD, "/dashboard/settings")
        await page.fill("#delete-account input[name=password]", NEW_PASSWORD)
        await page.click("#delete-account button[type=submit]")
        await page.wait_for_url(f"{site.base_url}/")
        await tab.goto("/signin")
        await page.fill("#signin input[name=email]", address)
        await page.fill("#signin input[name=password]", NEW_PASSWORD)
        await page.click("#signin button[type=submit]")
        await expect(page.locator("#signin [data-error]")).to_be_visible()

        # what was refused on purpose: a wrong password, the request without CSRF token, an unknown code
        refused = ("/v1/auth/signin", "/v1/keys", "/v1/promo-codes/redeem")
        assert [p for p in tab.problems if not p.endswith(refused)] == []
    finally:
        await context.close()
