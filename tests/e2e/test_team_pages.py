"""Teams in the browser: an owner invites a teammate from the members page; the teammate signs up from the
mail's link and sees the shared balance; the owner sees it all in the audit trail."""

from __future__ import annotations

import uuid

from playwright.async_api import Browser, expect

from tests.e2e.conftest import Tab, first_link, outbox_mail
from tests.e2e.test_account_pages import PASSWORD, sign_in, verified_account
from tests.harness import ApiServer

TEAMMATE_PASSWORD = "Teammate pass 12345"


async def test_invite_a_teammate_who_signs_up_from_the_mail_and_sees_the_shared_balance(
    browser: Browser, site: ApiServer
) -> None:
    owner_address = await verified_account(site)
    teammate = f"teammate-{uuid.uuid4().hex[:10]}@example.com"
    owner_context = await browser.new_context(viewport={"width": 1280, "height": 900})
    teammate_context = await browser.new_context(viewport={"width": 1280, "height": 900})
    for context in (owner_context, teammate_context):
        context.set_default_timeout(20_000)
    try:
        owner = Tab(await owner_context.new_page(), site.base_url, "team-owner")
        await sign_in(owner, owner_address, PASSWORD, "/dashboard/members")
        await owner.page.fill("#invite input[name=email]", teammate)
        await owner.page.select_option("#invite select[name=role]", "developer")
        await owner.page.click("#invite button[type=submit]")
        await expect(owner.page.locator("#flash")).to_have_text("Invitation sent.")
        await expect(owner.page.locator("#invitations")).to_contain_text(teammate)
        await owner.shot("members")
        await owner.goto("/dashboard")
        shared_balance = await owner.page.locator("#balance-available").inner_text()

        link = first_link(await outbox_mail(site.settings.mail.outbox_dir, teammate, "You are invited"))
        assert link.startswith(f"{site.base_url}/invitation?token=")
        tab = Tab(await teammate_context.new_page(), site.base_url, "team-teammate")
        await tab.page.goto(link)
        await expect(tab.page.locator("main")).to_contain_text(owner_address)
        await tab.page.fill("#accept input[name=password]", TEAMMATE_PASSWORD)
        await tab.page.check("#accept input[name=age_confirmed]")
        await tab.shot("invitation")
        await tab.page.click("#accept button[type=submit]")
        await tab.page.wait_for_url(f"{site.base_url}/dashboard")
        await expect(tab.page.locator("#balance-available")).to_have_text(shared_balance)
        assert shared_balance.startswith("25")
        await tab.goto("/dashboard/members")
        await expect(tab.page.locator("#members")).to_contain_text(owner_address)
        await expect(tab.page.locator("#members")).to_contain_text(teammate)
        await expect(tab.page.locator("#invite")).to_have_count(0)  # a developer does not invite
        await tab.shot("teammate-members")

        # The owner gives the teammate a budget of their own.
        await owner.goto("/dashboard/members")
        row = owner.page.locator("#members tr", has_text=teammate)
        await row.locator("input[name='budget.amount']").fill("3")
        await row.locator("text=Set budget").click()
        await expect(owner.page.locator("#flash")).to_have_text("Budget set.")
        await expect(owner.page.locator("#members tr", has_text=teammate).locator(".budget")).to_contain_text(
            "3.00 of 3.00 / day"
        )

        await owner.goto("/dashboard/audit")
        await expect(owner.page.locator("#audit")).to_contain_text("member.join")
        await expect(owner.page.locator("#audit")).to_contain_text("member.invite")
        await expect(owner.page.locator("#audit")).to_contain_text("member.budget")
        assert owner.problems == [] and tab.problems == []
    finally:
        await owner_context.close()
        await teammate_context.close()


async def test_budgets_and_alerts_from_the_dashboard(browser: Browser, site: ApiServer) -> None:
    address = await verified_account(site)
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    try:
        tab = Tab(await context.new_page(), site.base_url, "budgets")
        page = tab.page
        await sign_in(tab, address, PASSWORD, "/dashboard/keys")
        await page.fill("#create-key input[name=name]", "budgeted")
        await page.fill("#create-key input[name='budget.amount']", "5")
        await page.select_option("#create-key select[name='budget.period']", "week")
        await page.click("#create-key button[type=submit]")
        await expect(page.locator("#new-secret")).not_to_be_empty()
        await tab.goto("/dashboard/keys")
        row = page.locator("#keys tr", has_text="budgeted")
        await expect(row.locator(".budget")).to_contain_text("5.00 of 5.00 / week")
        await row.locator("input[name='budget.amount']").fill("2")
        await row.locator("select[name='budget.period']").select_option("day")
        await row.locator("text=Set budget").click()
        await expect(page.locator("#flash")).to_have_text("Budget set.")
        await expect(page.locator("#keys tr", has_text="budgeted").locator(".budget")).to_contain_text(
            "2.00 of 2.00 / day"
        )
        await tab.shot("keys-budget")

        await tab.goto("/dashboard/billing")
        await page.fill("#alerts input[name=low_balance_threshold]", "30")
        await page.fill("#alerts input[name=budget_thresholds]", "50, 90")
        await page.click("#alerts button[type=submit]")
        await expect(page.locator("#flash")).to_have_text("Alert settings saved.")
        await expect(page.locator("#alerts input[name=low_balance_threshold]")).to_have_value("30")
        await expect(page.locator("#alerts input[name=budget_thresholds]")).to_have_value("50, 90")
        await tab.shot("alerts")
        assert tab.problems == []
    finally:
        await context.close()
