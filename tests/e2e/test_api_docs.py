"""``/docs`` in Chromium with every host but Conduit's blocked, as on a self-hosted machine without internet: the
reference renders from the files Conduit serves, and the page asks no other host for anything."""

from __future__ import annotations

from playwright.async_api import BrowserContext, expect

from tests.e2e.conftest import Tab, only_this_site
from tests.harness import ApiServer


async def test_docs_render_offline(context: BrowserContext, site: ApiServer) -> None:
    elsewhere = await only_this_site(context, site.base_url)
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
