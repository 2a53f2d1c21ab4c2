"""The dashboard's task page follows its task through the live event stream (EventSource), not by reloading."""

from __future__ import annotations

from playwright.async_api import BrowserContext, expect

from shared.services import Services
from shared.settings import Settings
from tests.e2e.conftest import Tab
from tests.e2e.test_account_pages import PASSWORD, sign_in, verified_account
from tests.harness import ApiServer, InProcessWorker

SUBMIT = """async (input) => {
  const response = await fetch("/v1/tasks", {
    method: "POST",
    headers: {"Content-Type": "application/json",
              "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content},
    body: JSON.stringify({model: "ltx-video", input}),
  });
  return await response.json();
}"""


async def test_the_task_page_shows_live_progress_then_the_result(
    context: BrowserContext, site: ApiServer, services: Services, web_settings: Settings
) -> None:
    await services.redis.flushdb()  # no job of an earlier test runs when this test's worker starts
    address = await verified_account(site)
    tab = Tab(await context.new_page(), site.base_url, "task-events")
    page = tab.page
    await sign_in(tab, address, PASSWORD, "/dashboard/tasks")
    # a video of 96 frames: its page sees the frames drawn one after another
    task = await page.evaluate(SUBMIT, {"prompt": "a ball", "duration_s": 4, "fps": 24, "width": 512, "height": 512})
    assert task["status"] == "queued", task

    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    async with page.expect_request(f"**/v1/tasks/{task['id']}/events"):
        await tab.goto(f"/dashboard/tasks/{task['id']}")
    await expect(page.locator("#task-status .badge")).to_have_text("queued")
    assert await page.evaluate("document.body.dataset.refresh") is None  # no reload timer: the stream tells

    async with InProcessWorker(web_settings):
        await expect(page.locator("#task-progress [data-progress-label]")).to_contain_text("frame", timeout=60_000)
        assert await page.locator("#task-progress").is_visible()
        await expect(page.locator("#task-status .badge")).to_have_text("succeeded", timeout=60_000)
        await expect(page.locator(".outputs img.preview")).to_be_visible()
    # one load, one reload once the task ended (to show its outputs and charges)
    assert len(navigations) == 2, navigations
    assert not tab.problems, tab.problems
    await tab.shot("succeeded")
