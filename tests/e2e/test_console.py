"""The console in Chromium: a support agent signs in with a second factor (enrolled on the settings page,
codes computed with pyotp), answers a ticket with an attachment and leaves an internal note the customer never
sees, and cannot grant credits (403, logged); an admin finds an account by key prefix, grants credits with a
reason (in the account's ledger and the audit log), suspends it (the customer's next call is refused), and
retries a stuck task; a customer's session gets no console page."""

from __future__ import annotations

import re
import time
import uuid

import httpx
import pyotp
from playwright.async_api import Browser, Dialog, FilePayload, Page, expect

from shared.accounts.passwords import hash_password
from shared.accounts.service import create_account
from shared.ledger.money import parse_credits
from shared.services import Services
from shared.settings import Settings
from tests.e2e.conftest import Tab
from tests.files import image_bytes
from tests.harness import ApiServer, InProcessWorker, wait_for

PASSWORD = "Console pass phrase 7"
CONSOLE_PAGES = ["/console", "/console/tasks", "/console/providers", "/console/support", "/console/moderation",
                 "/console/billing", "/console/audit", "/console/staff"]  # fmt: skip


async def person(services: Services, role: str, credits: str = "0") -> tuple[str, str, uuid.UUID]:
    """An account with a password and a verified address: (email, API key, id)."""
    email = f"{role}-{uuid.uuid4().hex[:10]}@example.com"
    created = await create_account(services.db, email=email, credits=parse_credits(credits), role=role)
    await services.db.execute(
        "UPDATE accounts SET password_hash = $2 WHERE id = $1", created.account_id, await hash_password(PASSWORD)
    )
    return email, created.api_key.secret, created.account_id


async def sign_in(tab: Tab, email: str, then: str, secret: str | None = None) -> None:
    """The sign-in page (from ``then``'s redirect); with ``secret``, the code step with the next TOTP code (the
    current step's code may already have been used)."""
    page = tab.page
    await tab.goto(then)
    await page.fill("#signin input[name=email]", email)
    await page.fill("#signin input[name=password]", PASSWORD)
    await page.click("#signin button[type=submit]")
    if secret is not None:
        await expect(page.locator("#second-factor")).to_be_visible()
        await page.fill("#second-factor input[name=code]", pyotp.TOTP(secret).at(time.time() + 30))
        await page.click("#second-factor button[type=submit]")
    await page.wait_for_url(f"{tab.base_url}{then}")


async def accept_dialogs(page: Page) -> None:
    async def accept(dialog: Dialog) -> None:
        await dialog.accept()

    page.on("dialog", accept)


async def test_support_agent_enrols_a_second_factor_and_answers_a_ticket(
    browser: Browser, site: ApiServer, services: Services
) -> None:
    agent_email, _, agent_id = await person(services, "support")
    customer_email, customer_key, customer_id = await person(services, "user", "3")
    auth = {"Authorization": f"Bearer {customer_key}"}
    async with httpx.AsyncClient(base_url=site.base_url) as api:
        opened = await api.post(
            "/v1/support/tickets",
            json={"subject": "My images are blurry", "category": "technical", "body": "See the last task."},
            headers=auth,
        )
        ticket_id = opened.json()["id"]

        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(20_000)
        try:
            tab = Tab(await context.new_page(), site.base_url, "console-support")
            page = tab.page
            await accept_dialogs(page)
            # Signed in with the password only, the console is closed; the settings page says why.
            await sign_in(tab, agent_email, "/dashboard/settings")
            await expect(page.locator("#staff-second-factor")).to_be_visible()
            await page.click("#totp-setup button[type=submit]")
            await expect(page.locator("#totp-secret")).to_have_text(re.compile(r"^[A-Z2-7]{32}$"))
            secret = (await page.locator("#totp-secret").text_content() or "").strip()
            await expect(page.locator("#totp-setup img.qr")).to_be_visible()
            await page.fill("#totp-enable input[name=code]", pyotp.TOTP(secret).now())
            await page.click("#totp-enable button[type=submit]")
            await expect(page.locator("#recovery-codes")).to_contain_text("-")
            await tab.shot("totp-enrolled")
            await page.click("header form button")  # sign out
            await page.wait_for_url(f"{site.base_url}/")
            await sign_in(tab, agent_email, "/console/support", secret)

            # The queue, the ticket, an answer with an attachment and an internal note.
            await page.click(f"a[href='/console/support/{ticket_id}']")
            await page.fill("#reply textarea[name=body]", "Try a larger size; the screenshot shows the setting.")
            screenshot = FilePayload(name="setting.png", mimeType="image/png", buffer=image_bytes("PNG"))
            await page.set_input_files("#reply input[name=files]", files=[screenshot])
            await page.click("#reply button[type=submit]")
            await expect(page.locator("#thread img.attachment-preview")).to_have_count(1)
            await page.fill("#reply textarea[name=body]", "Known issue with the old model; no refund needed.")
            await page.check("#reply input[name=internal]")
            await page.click("#reply button[type=submit]")
            await expect(page.locator("#thread .message.internal")).to_contain_text("no refund needed")
            await tab.shot("ticket")

            # A support agent sees the account but has no grant form, and the API refuses a grant (logged).
            await tab.goto(f"/console/accounts/{customer_id}")
            await expect(page.locator("#credits")).to_have_count(0)
            status = await page.evaluate(
                """async (path) => (await fetch(path, {method: "POST", headers: {"Content-Type": "application/json",
                    "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content},
                    body: JSON.stringify({amount: 100, reason: "helping"})})).status""",
                f"/v1/admin/accounts/{customer_id}/credits",
            )
            assert status == 403
            tab.problems.remove(f"403 {site.base_url}/v1/admin/accounts/{customer_id}/credits")
            assert tab.problems == []
        finally:
            await context.close()

        thread = (await api.get(f"/v1/support/tickets/{ticket_id}", headers=auth)).json()["messages"]
        assert [m["body"] for m in thread][-1].startswith("Try a larger size")
        assert all("no refund needed" not in m["body"] for m in thread)
        assert thread[-1]["attachments"][0]["filename"] == "setting.png"
        assert (await api.get("/v1/account", headers=auth)).json()["balance"]["available"] == 3
    refused = await services.db.fetchval(
        "SELECT action FROM staff_audit_log WHERE actor_id = $1 AND outcome = 'refused'", agent_id
    )
    assert refused == "refused.adjust_credits"
    del customer_email


async def test_admin_grants_suspends_and_retries_and_customers_are_kept_out(
    browser: Browser, site: ApiServer, web_settings: Settings, services: Services
) -> None:
    admin_email, _, _ = await person(services, "admin")
    secret = pyotp.random_base32()
    await services.db.execute(
        "UPDATE accounts SET totp_secret = $2, totp_enabled_at = now() WHERE email = $1", admin_email, secret
    )
    customer_email, customer_key, customer_id = await person(services, "user", "2")
    auth = {"Authorization": f"Bearer {customer_key}"}
    async with httpx.AsyncClient(base_url=site.base_url) as api:
        # A stuck task: running under a lease nobody renews, its job lost (no worker runs yet; Redis emptied).
        stuck = (
            await api.post("/v1/tasks", json={"model": "flux-schnell", "input": {"prompt": "stuck"}}, headers=auth)
        ).json()
        await services.redis.flushdb()
        await services.db.execute(
            "UPDATE tasks SET status = 'running', lease_expires_at = now() + interval '1 hour' WHERE id = $1",
            uuid.UUID(stuck["id"]),
        )
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(20_000)
        try:
            customer_tab = Tab(await context.new_page(), site.base_url, "console-customer")
            await sign_in(customer_tab, customer_email, "/dashboard")
            for path in [*CONSOLE_PAGES, f"/console/accounts/{customer_id}", f"/console/tasks/{stuck['id']}"]:
                response = await customer_tab.goto(path)
                assert response.status == 403, path
                await expect(customer_tab.page.locator("h1")).to_have_text("Not allowed")
            await context.clear_cookies()

            tab = Tab(await context.new_page(), site.base_url, "console-admin")
            page = tab.page
            await accept_dialogs(page)
            await sign_in(tab, admin_email, "/console", secret)
            await page.fill("#account-search input[name=q]", customer_key[:12])
            await page.click("#account-search button[type=submit]")
            await page.click(f"#accounts a[href='/console/accounts/{customer_id}']")
            await page.fill("#credits input[name=amount]", "5")
            await page.fill("#credits input[name=reason]", "goodwill for the outage")
            await page.click("#credits button[type=submit]")
            await expect(page.locator("#flash")).to_have_text("Credits adjusted.")
            await expect(page.locator("#available")).to_have_text("6.70")  # 2 + 5, less the stuck task's hold
            await expect(page.locator("#ledger")).to_contain_text("goodwill for the outage")
            await tab.shot("account")

            await page.fill("#suspend input[name=reason]", "card testing")
            await page.click("#suspend button[type=submit]")
            await expect(page.locator("#suspension-reason")).to_contain_text("card testing")
            refused = await api.get("/v1/account", headers=auth)
            assert refused.status_code == 403 and "card testing" in refused.json()["error"]["message"]

            await tab.goto(f"/console/tasks/{stuck['id']}")
            await page.click("#retry-task button[type=submit]")
            await expect(page.locator("#flash")).to_have_text("Handed back to the workers.")
            await tab.goto("/console/audit")
            await expect(page.locator("#audit")).to_contain_text("credits.grant")
            await expect(page.locator("#audit")).to_contain_text("goodwill for the outage")
            await expect(page.locator("#audit")).to_contain_text("account.suspend")
            await expect(page.locator("#audit")).to_contain_text("task.retry")
            await tab.shot("audit")
            assert tab.problems == []
        finally:
            await context.close()
        async with InProcessWorker(web_settings):  # the retried task runs (a suspended account's task still settles)
            await wait_for(lambda: _terminal(services, stuck["id"]), timeout=30, what="the retried run")
        assert await _terminal(services, stuck["id"]) == "succeeded"


async def _terminal(services: Services, task_id: str) -> str | None:
    status = await services.db.fetchval("SELECT status FROM tasks WHERE id = $1", uuid.UUID(task_id))
    return status if status in ("succeeded", "failed", "canceled") else None
