"""The OpenAI-compatible media routes through the official ``openai`` client: ``images.edit`` (multipart image
and mask) and chat messages with ``image_url`` parts (URL, data: URI or upload id) for vision models."""

from __future__ import annotations

import asyncio
import base64
import io
import uuid
from decimal import Decimal

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionContentPartParam

from tests.conftest import AccountFactory
from tests.harness import ApiServer, InProcessWorker
from tests.integration.helpers import balance
from tests.integration.media.conftest import data_uri, image_bytes, opened, uploaded_id
from tests.integration.openai_helpers import async_client, sync_client
from tests.simulators import Simulators


async def test_images_edit_through_the_openai_client_changes_only_the_masked_area(
    media_api: ApiServer, mclient: httpx.AsyncClient, make_account: AccountFactory, media_worker: InProcessWorker
) -> None:
    account = await make_account(credits="20")
    photo = image_bytes(128, 64, (30, 160, 90))
    mask = opened(image_bytes(128, 64, (0, 0, 0), mode="RGBA"))
    mask.paste((0, 0, 0, 0), (64, 0, 128, 64))  # transparent right half: edit there (OpenAI's convention)
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    oai = sync_client(media_api, account)
    result = await asyncio.to_thread(
        lambda: oai.images.edit(
            model="flux-fill-pro", image=("photo.png", photo), mask=("mask.png", buffer.getvalue()),
            prompt="a lantern", response_format="b64_json",
        )
    )  # fmt: skip
    assert result.data is not None
    [item] = result.data
    assert item.b64_json is not None
    edited, source = opened(base64.b64decode(item.b64_json)).convert("RGB"), opened(photo).convert("RGB")
    assert edited.size == (128, 64)
    assert edited.crop((0, 0, 64, 64)).tobytes() == source.crop((0, 0, 64, 64)).tobytes()
    assert edited.crop((64, 0, 128, 64)).tobytes() != source.crop((64, 0, 128, 64)).tobytes()
    assert await balance(mclient, account) == (Decimal("15"), Decimal("0"))

    async with async_client(media_api, account) as client:
        urls = await client.images.edit(model="flux-kontext-pro", image=("p.png", photo), prompt="dusk", n=1)
        assert urls.data is not None and urls.data[0].url is not None
        assert opened((await mclient.get(urls.data[0].url)).content).size == (128, 64)
        with pytest.raises(openai.BadRequestError) as not_an_editor:
            await client.images.edit(model="flux-schnell", image=("p.png", photo), prompt="x")
        assert not_an_editor.value.code == "invalid_input" and not_an_editor.value.param == "image"
        with pytest.raises(openai.BadRequestError) as not_an_image:
            await client.images.edit(model="flux-kontext-pro", image=("p.png", b"plain text"), prompt="x")
        assert (not_an_image.value.code, not_an_image.value.param) == ("media_type_not_allowed", "image")
        with pytest.raises(openai.BadRequestError) as no_mask_param:
            await client.images.edit(
                model="flux-kontext-pro", image=("p.png", photo), mask=("m.png", photo), prompt="x"
            )
        assert no_mask_param.value.param == "mask"
    assert await balance(mclient, account) == (Decimal("11"), Decimal("0"))  # one Kontext edit; refusals free


async def test_vision_chat_describes_the_image_it_was_given(
    media_api: ApiServer, mclient: httpx.AsyncClient, make_account: AccountFactory, sims: Simulators
) -> None:
    account = await make_account(credits="10")
    red = image_bytes(64, 48, (220, 30, 30))
    blue_url = sims.fal.host_file(f"{uuid.uuid4().hex}.png", image_bytes(200, 100, (30, 60, 220)), "image/png")
    upload_id = await uploaded_id(mclient, account, image_bytes(32, 32, (240, 220, 40), fmt="JPEG"))
    async with async_client(media_api, account) as client:
        answer = await client.chat.completions.create(
            model="test-vision-chat",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in these?"},
                        {"type": "image_url", "image_url": {"url": data_uri(red)}},
                        {"type": "image_url", "image_url": {"url": blue_url, "detail": "low"}},
                        {"type": "image_url", "image_url": {"url": upload_id}},
                    ],
                }
            ],
            max_tokens=200,
        )
    text = answer.choices[0].message.content or ""
    assert "Image 1: a 64x48 PNG image; dominant colours: red" in text, text
    assert "Image 2: a 200x100 PNG image; dominant colours: blue" in text, text
    assert "Image 3: a 32x32 JPEG image; dominant colours: yellow" in text, text


async def test_image_parts_are_refused_for_text_only_models_and_bad_images_are_named(
    media_api: ApiServer, make_account: AccountFactory, sims: Simulators
) -> None:
    account = await make_account(credits="10")
    part: ChatCompletionContentPartParam = {
        "type": "image_url",
        "image_url": {"url": data_uri(image_bytes(8, 8, (0, 0, 0)))},
    }
    async with async_client(media_api, account) as client:
        with pytest.raises(openai.BadRequestError) as text_only:
            await client.chat.completions.create(
                model="llama-3.1-8b-instruct", messages=[{"role": "user", "content": [part]}]
            )
        assert text_only.value.param == "messages[0].content[0]"
        cases = {
            "http://169.254.169.254/latest": "url_not_allowed",
            f"{sims.fal.origin}/files/gone.png": "input_url_unreachable",
            "data:image/png;base64," + base64.b64encode(b"not an image").decode(): "media_type_not_allowed",
            f"upl_{uuid.uuid4().hex}": "upload_not_found",
        }
        for url, code in cases.items():
            with pytest.raises(openai.BadRequestError) as refused:
                await client.chat.completions.create(
                    model="test-vision-chat",
                    messages=[{"role": "user", "content": [{"type": "text", "text": "hi"},
                                                           {"type": "image_url", "image_url": {"url": url}}]}],
                )  # fmt: skip
            assert (refused.value.code, refused.value.param) == (code, "messages[0].content[1].image_url"), url
