"""A person's journeys through the website in a real browser (Chromium, headless)."""

from __future__ import annotations

import re
import uuid

from playwright.async_api import BrowserContext, Dialog, FilePayload, expect

from shared.services import Services
from shared.settings import Settings
from tests.e2e.conftest import Tab, first_link, outbox_mail
from tests.harness import ApiServer, InProcessWorker

PASSWORD = "Lighthouse at dusk 7"
ATTACHMENT = b"2026-11-22T00:00:00Z worker-1 task failed: upstream_timeout\n"


async def sign_up_and_verify(tab: Tab, settings: Settings, address: str) -> None:
    page = tab.page
    await tab.goto("/signup")
    await page.fill("#signup input[name=email]", address)
    await page.fill("#signup input[name=password]", PASSWORD)
    await page.click("#signup button[type=submit]")
    # the 18+ box is required: the browser refuses the form until it is ticked
    await expect(page.locator("#signup [data-out]")).to_be_hidden()
    await page.check("#signup input[name=age_confirmed]")
    await page.click("#signup button[type=submit]")
    await expect(page.locator("#signup [data-out]")).to_contain_text("we sent you a mail")
    await tab.shot("signup")

    link = first_link(await outbox_mail(settings.mail.outbox_dir, address, "Confirm your email"))
    assert link.startswith(f"{tab.base_url}/verify-email?token=")
    await page.goto(link)
    await expect(page.locator("h1")).to_have_text("Your email is confirmed")
    await expect(page.locator("main")).to_contain_text("signup reward of 25 credits")

    await page.click("text=Sign in")
    await page.fill("#signin input[name=email]", address)
    await page.fill("#signin input[name=password]", PASSWORD)
    await page.click("#signin button[type=submit]")
    await page.wait_for_url(f"{tab.base_url}/dashboard")


async def accept(dialog: Dialog) -> None:
    await dialog.accept()


async def test_sign_up_to_support_ticket(
    context: BrowserContext, site: ApiServer, site_worker: InProcessWorker, services: Services
) -> None:
    del site_worker
    tab = Tab(await context.new_page(), site.base_url, "journey")
    page = tab.page
    address = f"browser-{uuid.uuid4().hex[:10]}@example.com"

    # The public pages (screenshots of each), then sign up -> verify through the outbox mail -> the dashboard
    # shows the signup reward.
    for path, name in (
        ("/", "home"),
        ("/models?kind=image", "models"),
        ("/pricing", "pricing"),
        ("/quickstart", "docs"),
    ):
        await tab.goto(path)
        await tab.shot(name)
    await sign_up_and_verify(tab, site.settings, address)
    await expect(page.locator("#balance-available")).to_have_text("25.00")
    await expect(page.locator("#expiries")).to_contain_text("signup")
    await tab.shot("dashboard")

    # Create a key: the secret is shown once, with a copy button; never again after.
    await tab.goto("/dashboard/keys")
    await page.fill("#create-key input[name=name]", "laptop")
    await page.click("#create-key button[type=submit]")
    secret_box = page.locator("#new-secret")
    await expect(secret_box).to_have_text(re.compile(r"^cdt_[A-Za-z0-9]{40}$"))
    secret = await secret_box.inner_text()
    await page.click("#secret-box button[data-copy]")
    assert await page.evaluate("navigator.clipboard.readText()") == secret
    await tab.shot("key-created")
    await tab.goto("/dashboard/keys")
    await expect(page.locator("#keys")).to_contain_text("laptop")
    assert secret not in await page.content()
    assert secret[:12] in await page.content()  # its prefix identifies it

    # The playground runs an image model through the task pipeline; the image is shown.
    await tab.goto("/dashboard/playground")
    await page.select_option("#play-image select[name=model]", "flux-schnell")
    await page.fill("#play-image textarea[name='input.prompt']", "a red lighthouse")
    await page.click("#play-image button[type=submit]")
    image = page.locator("#play-image [data-out] img.preview")
    await expect(image).to_be_visible()
    assert await image.evaluate("img => img.complete && img.naturalWidth") == 512
    await expect(page.locator("#play-image [data-out]")).to_contain_text("Charged 0.3 credits")
    await tab.shot("playground")

    # The usage chart shows the charge.
    await tab.goto("/dashboard/usage")
    bar = page.locator("svg.chart rect.bar[data-model='flux-schnell']")
    await expect(bar).to_have_count(1)
    await expect(page.locator("#usage-credits")).to_have_text("0.30")
    await expect(page.locator("#usage-records")).to_contain_text("flux-schnell")
    await expect(page.locator("#csv")).to_have_attribute("href", "/v1/usage/export")
    await tab.shot("usage")

    # Buy credits: Stripe Checkout (simulated) -> back to the return page -> credits appear.
    await tab.goto("/dashboard/billing")
    await page.click("button[data-product=starter]")
    await page.wait_for_url(re.compile(r".*/c/pay/cs_test_.*"))
    await page.click("#pay")
    await page.wait_for_url(re.compile(r".*/dashboard/billing/return\?result=success&order_id=.*"))
    await expect(page.locator("#payment-result")).to_have_text("Payment received", timeout=30_000)
    await expect(page.locator("#balance-available")).to_have_text("524.70")
    await tab.shot("payment-received")
    await tab.goto("/dashboard/billing")
    await expect(page.locator("#orders")).to_contain_text("paid")

    # The pack's credits are unused: the order page offers their refund (within 7 days), through Stripe.
    await page.click("#orders >> text=Details")
    await expect(page.locator("#refund")).to_contain_text("refund of $5.00")
    page.once("dialog", accept)
    await page.click("#refund button[type=submit]")
    await expect(page.locator("#flash")).to_have_text("Refund requested.")
    await expect(page.locator(".facts .badge")).to_have_text("refunded")
    await expect(page.locator("#refund")).to_have_count(0)
    await tab.goto("/dashboard")
    await expect(page.locator("#balance-available")).to_have_text("24.70")

    # Open a ticket with an attachment; the thread shows it.
    await tab.goto("/dashboard/support")
    await page.fill("#new-ticket input[name=subject]", "Video task failed")
    await page.select_option("#new-ticket select[name=category]", "technical")
    await page.fill("#new-ticket textarea[name=body]", "My task failed, log attached.")
    await page.set_input_files(
        "#new-ticket input[type=file]", files=[FilePayload(name="worker.log", mimeType="text/plain", buffer=ATTACHMENT)]
    )
    await page.click("#new-ticket button[type=submit]")
    await page.wait_for_url(re.compile(r".*/dashboard/support/[0-9a-f-]{36}$"))
    await expect(page.locator("h1")).to_have_text("Video task failed")
    attachment = page.locator("#thread .attachments a")
    await expect(attachment).to_have_text("worker.log")
    await tab.shot("ticket")
    async with page.expect_download() as download_info:
        await attachment.click()
    download = await download_info.value
    assert download.suggested_filename == "worker.log"

    # Close it: the thread stays, the reply form goes, and it can be reopened.
    await page.click("text=Close the ticket")
    await expect(page.locator("main .badge").first).to_have_text("closed")
    await expect(page.locator("#reply")).to_have_count(0)
    await expect(page.locator("button", has_text="Reopen")).to_be_visible()

    assert tab.problems == []
    refunds = await services.db.fetchval(
        "SELECT count(*) FROM billing_refunds r JOIN accounts a ON a.id = r.account_id WHERE a.email = $1", address
    )
    assert refunds == 1
