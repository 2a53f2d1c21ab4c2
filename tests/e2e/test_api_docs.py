"""``/docs`` in Chromium with every host but Conduit's blocked, as on a self-hosted machine without internet: the
reference renders from the files Conduit serves, and the page asks no other host for anything."""

from __future__ import annotations

from playwright.async_api import BrowserContext, Route, expect

from tests.e2e.conftest import Tab
from tests.harness import ApiServer


async def test_docs_render_offline(context: BrowserContext, site: ApiServer) -> None:
    elsewhere: list[str] = []

    async def only_this_site(route: Route) -> None:
        if route.request.url.startswith(f"{site.base_url}/"):
            await route.continue_()
        else:  # never fetched: recorded, and the test fails below
            elsewhere.append(route.request.url)
            await route.abort()

    await context.route("**/*", only_this_site)
    tab = Tab(await context.new_page(), site.base_url, "docs")
    page = tab.page
    await tab.goto("/docs")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("Conduit")
    submit = page.locator(".opblock-post", has=page.locator(".opblock-summary-path[data-path='/v1/tasks']"))
    await expect(submit).to_be_visible()
    await submit.locator(".opblock-summary").click()  # an operation opens: its parameters and answers render
    answers = submit.locator(".responses-wrapper")
    await expect(answers).to_contain_text("202")
    await expect(answers).to_contain_text("The request was refused (the error shape)")
    await tab.shot("reference")
    assert elsewhere == []
    assert tab.problems == []
