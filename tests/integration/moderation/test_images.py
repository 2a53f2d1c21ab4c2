"""Image moderation through a moderation model speaking OpenAI's omni-moderation wire format (``input`` items
``{"type": "image_url", "image_url": {"url": "data:…"}}``), over real HTTP to the simulator: input images of a
chat request, generated images of a model whose outputs are moderated; with the rules only, images are not
checked. The simulator "sees" a verdict word carried in the image's data (a PNG text chunk)."""

from __future__ import annotations

import base64
import dataclasses
import io
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from shared.catalog import Catalog
from shared.catalog.providers import ProviderSpec
from shared.moderation.decisions import ContentPolicyViolation
from shared.moderation.events import Subject
from shared.moderation.pipeline import Moderator
from shared.moderation.policy import PolicyError, parse_policy
from shared.providers.base import Output
from shared.services import Services
from tests.conftest import AccountFactory
from tests.harness import ApiServer
from tests.simulators.moderation import ModerationSimulator

SPEC = ProviderSpec(name="sim-mod", protocol="openai", base_url="http://unused", api_key_env="SIM_MOD_API_KEY")
CATEGORIES = {"violence": {"action": "block"}, "self-harm": {"action": "flag"}}


def png(comment: str = "") -> bytes:
    """A small valid PNG; ``comment`` goes in a text chunk (what the simulator reads as the image's content)."""
    info = PngInfo()
    if comment:
        info.add_text("Comment", comment)
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 40, 40)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def data_uri(data: bytes) -> str:
    return f"data:image/png;base64,{base64.b64encode(data).decode()}"


@pytest.fixture
async def sim() -> AsyncIterator[ModerationSimulator]:
    simulator = ModerationSimulator("sk-sim-moderation")
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


def image_moderator(services: Services, sim: ModerationSimulator, *, images: bool = True) -> Moderator:
    policy = parse_policy({
        "version": 5, "categories": CATEGORIES, "outputs": {"models": ["test-image-out"]},
        "model": {"protocol": "openai_moderation", "provider": "sim-mod", "model": "omni-moderation-latest",
                  "images": images},
    })  # fmt: skip
    settings = dataclasses.replace(
        services.settings, provider_env={"SIM_MOD_API_KEY": sim.key, "SIM_MOD_BASE_URL": sim.base_url}
    )
    catalog = Catalog([], version=1, providers={"sim-mod": dataclasses.replace(SPEC, base_url_env="SIM_MOD_BASE_URL")})
    return Moderator.build(policy, settings, catalog, http=services.http, db=services.db, redis=services.redis,
                           background=services.background)  # fmt: skip


async def test_input_images_are_judged_through_the_moderation_model(
    services: Services, sim: ModerationSimulator, make_account: AccountFactory
) -> None:
    account = await make_account()
    moderator = image_moderator(services, sim)
    subject = Subject(account.id, None, "chat.completion", "test-vision-chat", "text", request_id=uuid.uuid4())
    await moderator.check_images(subject, [data_uri(png())])  # a plain image: allowed
    with pytest.raises(ContentPolicyViolation) as blocked:
        await moderator.check_images(subject, [data_uri(png()), data_uri(png("simviolent"))])
    assert blocked.value.category == "violence" and "this request was refused" in blocked.value.message
    assert len(sim.images_seen) == 3 and all(url.startswith("data:image/png;base64,") for url in sim.images_seen)
    event = await services.db.fetchrow(
        "SELECT stage, category, action, checker, excerpt FROM moderation_events WHERE account_id = $1", account.id
    )
    assert event is not None and dict(event) == {
        "stage": "input", "category": "violence", "action": "blocked", "checker": "model",
        "excerpt": "[image 2 of 2]",
    }  # fmt: skip
    record = await services.db.fetchrow(
        "SELECT status, moderation_category, credits FROM usage_records WHERE account_id = $1", account.id
    )
    assert record is not None and tuple(record) == ("blocked", "violence", 0)


async def test_generated_images_of_a_moderated_model_are_judged(
    services: Services, sim: ModerationSimulator, make_account: AccountFactory
) -> None:
    account = await make_account()
    moderator = image_moderator(services, sim)
    subject = Subject(account.id, None, "task", "test-image-out", "image", task_id=uuid.uuid4())
    await moderator.check_outputs(subject, [Output(type="image", content_type="image/png", data=png())])
    with pytest.raises(ContentPolicyViolation) as blocked:
        await moderator.check_outputs(subject, [Output(type="image", content_type="image/png", data=png("simviolent"))])
    assert "generated output" in blocked.value.message and blocked.value.category == "violence"
    other = dataclasses.replace(subject, model="some-other-model")  # outputs not moderated for it
    await moderator.check_outputs(other, [Output(type="image", content_type="image/png", data=png("simviolent"))])
    assert len(sim.images_seen) == 2
    stages = await services.db.fetch("SELECT stage, action FROM moderation_events WHERE account_id = $1", account.id)
    assert [tuple(row) for row in stages] == [("output", "blocked")]
    # a blocked output is the model's doing: no usage record of a blocked request, no strike
    assert await services.db.fetchval("SELECT count(*) FROM usage_records WHERE account_id = $1", account.id) == 0


async def test_without_an_image_model_images_are_not_checked(
    services: Services, sim: ModerationSimulator, make_account: AccountFactory
) -> None:
    account = await make_account()
    subject = Subject(account.id, None, "chat.completion", "test-vision-chat", "text")
    for moderator in (image_moderator(services, sim, images=False), services.moderator):  # rules only (local)
        await moderator.check_images(subject, [data_uri(png("simviolent zorblax"))])
    assert sim.images_seen == []
    with pytest.raises(PolicyError, match="images"):
        parse_policy({"version": 1, "categories": {}, "model": {
            "protocol": "llama_guard", "provider": "x", "model": "y", "images": True}})  # fmt: skip


async def test_a_chat_request_with_a_blocked_image_is_refused_before_anything_is_held(
    api: ApiServer, client: httpx.AsyncClient, services: Services, sim: ModerationSimulator,
    make_account: AccountFactory,
) -> None:  # fmt: skip
    account = await make_account(credits="10")
    shipped = api.services.moderator
    api.services.moderator = image_moderator(services, sim)
    try:

        def request(image: bytes) -> dict[str, Any]:
            parts = [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": data_uri(image)}},
            ]
            return {"model": "test-vision-chat", "messages": [{"role": "user", "content": parts}], "max_tokens": 50}

        refused = await client.post("/v1/chat/completions", headers=account.headers, json=request(png("simviolent")))
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert error["code"] == "content_policy_violation" and "category: violence" in error["message"]
        held = await services.db.fetchval("SELECT count(*) FROM holds WHERE account_id = $1", account.id)
        assert held == 0
        served = await client.post("/v1/chat/completions", headers=account.headers, json=request(png()))
        assert served.status_code == 200, served.text
    finally:
        api.services.moderator = shipped


async def test_a_task_with_a_blocked_input_image_is_refused_before_anything_is_held(
    api: ApiServer, client: httpx.AsyncClient, services: Services, sim: ModerationSimulator,
    make_account: AccountFactory,
) -> None:  # fmt: skip
    account = await make_account(credits="10")
    shipped = api.services.moderator
    api.services.moderator = image_moderator(services, sim)
    try:

        def task(image: bytes) -> dict[str, Any]:
            return {"model": "test-up-image-edit", "input": {"prompt": "add a hat", "image": data_uri(image)}}

        refused = await client.post("/v1/tasks", headers=account.headers, json=task(png("simviolent")))
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert error["code"] == "content_policy_violation" and "category: violence" in error["message"]
        assert await services.db.fetchval("SELECT count(*) FROM holds WHERE account_id = $1", account.id) == 0
        assert await services.db.fetchval("SELECT count(*) FROM tasks WHERE account_id = $1", account.id) == 0
        record = await services.db.fetchrow(
            "SELECT source, status, moderation_category FROM usage_records WHERE account_id = $1", account.id
        )
        assert record is not None and tuple(record) == ("task", "blocked", "violence")
        accepted = await client.post("/v1/tasks", headers=account.headers, json=task(png()))
        assert accepted.status_code == 202, accepted.text
        assert len(sim.images_seen) == 2
    finally:
        api.services.moderator = shipped
