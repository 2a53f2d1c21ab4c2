"""After signing in, the browser follows ``next`` only to a path on this site. Chromium is driven through the
sign-in page with every hostile value an attacker would try (tabs and newlines the URL parser drops, back
slashes, ``//host``, schemes, encoded forms) and must never leave the site; the page's script holds on its own
too, when its target is tampered with after the server rendered it."""

from __future__ import annotations

import uuid
from urllib.parse import quote

from playwright.async_api import Browser, Page
from playwright.async_api import Error as PlaywrightError

from shared.accounts.passwords import hash_password
from shared.accounts.service import create_account
from shared.services import Services
from tests.e2e.conftest import only_this_site
from tests.harness import ApiServer
from tests.redirect_cases import HOSTILE_NEXT, SAME_SITE_NEXT

PASSWORD = "Redirect pass 42"


async def password_account(services: Services) -> str:
    address = f"redirect-{uuid.uuid4().hex[:10]}@example.com"
    created = await create_account(services.db, email=address)  # an operator's account: verified
    await services.db.execute(
        "UPDATE accounts SET password_hash = $2 WHERE id = $1", created.account_id, await hash_password(PASSWORD)
    )
    return address


async def sign_in_from(page: Page, site: ApiServer, address: str) -> str:
    """Submit the sign-in form on the current page; the URL the browser lands on."""
    await page.fill("#signin input[name=email]", address)
    await page.fill("#signin input[name=password]", PASSWORD)
    await page.click("#signin button[type=submit]")
    try:
        await page.wait_for_url(lambda url: not url.startswith(f"{site.base_url}/signin"))
        await page.wait_for_load_state()
    except PlaywrightError as exc:  # the navigation went elsewhere and was stopped
        return f"a failed navigation ({exc.message.splitlines()[0]})"
    return page.url


async def test_sign_in_never_leaves_the_site_whatever_next_says(
    browser: Browser, site: ApiServer, services: Services
) -> None:
    address = await password_account(services)
    context = await browser.new_context()
    context.set_default_timeout(20_000)
    elsewhere = await only_this_site(context, site.base_url)
    try:
        page = await context.new_page()
        # The server hands the page only same-site paths: every hostile value becomes the dashboard.
        for target in HOSTILE_NEXT + SAME_SITE_NEXT:
            response = await page.goto(f"{site.base_url}/signin?next={quote(target, safe='')}")
            if "\x00" in target:  # a NUL is refused in any parameter: an error page, no form to follow
                assert response is not None and response.status == 400, target
                continue
            landed = await sign_in_from(page, site, address)
            expected = target if target in SAME_SITE_NEXT else "/dashboard"
            assert landed == f"{site.base_url}{expected}", (target, landed, elsewhere)
            await context.clear_cookies()  # signed out for the next round
        # The script checks the target itself: a hostile one slipped into the form keeps the browser here.
        for target in HOSTILE_NEXT:
            await page.goto(f"{site.base_url}/signin")
            await page.eval_on_selector("#signin", "(form, target) => { form.dataset.next = target; }", target)
            landed = await sign_in_from(page, site, address)
            assert landed.startswith(f"{site.base_url}/"), (target, landed, elsewhere)
            await context.clear_cookies()
        assert elsewhere == []
    finally:
        await context.close()
