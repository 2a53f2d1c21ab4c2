"""The playground with input images, in a real browser: an image-to-image model restyles a picked file, and a
vision model describes one (each file uploaded first, then used by its upload id)."""

from __future__ import annotations

import io
import uuid

from PIL import Image
from playwright.async_api import Browser, FilePayload, expect

from tests.e2e.conftest import Tab
from tests.e2e.test_account_pages import PASSWORD, sign_in, verified_account
from tests.harness import ApiServer, InProcessWorker


def picture(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_the_playground_uploads_an_image_for_image_to_image_and_vision_chat(
    browser: Browser, site: ApiServer, site_worker: InProcessWorker
) -> None:
    del site_worker
    address = await verified_account(site)
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    try:
        tab = Tab(await context.new_page(), site.base_url, "playground-media")
        page = tab.page
        await sign_in(tab, address, PASSWORD, "/dashboard/playground")

        form = page.locator("#play-image-input")
        await form.locator("select[name=model]").select_option("sdxl-img2img")
        await form.locator("input[type=file]").set_input_files(
            FilePayload(name=f"{uuid.uuid4().hex}.png", mimeType="image/png", buffer=picture(288, 192, (200, 40, 40)))
        )
        await form.locator("textarea[name='input.prompt']").fill("the same, as a mosaic")
        await form.locator("button[type=submit]").click()
        image = form.locator("[data-out] img.preview")
        await expect(image).to_be_visible()
        assert await image.evaluate("img => img.complete && [img.naturalWidth, img.naturalHeight]") == [288, 192]
        await expect(form.locator(".task-status")).to_have_attribute("data-status", "succeeded")
        await tab.shot("image-to-image")

        vision = page.locator("#play-vision")
        await vision.locator("select[name=model]").select_option("llama-3.2-11b-vision-instruct")
        await vision.locator("input[type=file]").set_input_files(
            FilePayload(name="sky.png", mimeType="image/png", buffer=picture(96, 64, (30, 60, 220)))
        )
        await vision.locator("button[type=submit]").click()
        await expect(vision.locator("[data-out] pre.text-output")).to_contain_text(
            "Image 1: a 96x64 PNG image; dominant colours: blue"
        )
        await tab.shot("vision")
        uploads = await page.evaluate(
            "fetch('/v1/uploads', {credentials: 'same-origin'}).then(r => r.json()).then(b => b.data.length)"
        )
        assert uploads == 2
    finally:
        await context.close()
