"""``POST /v1/moderations`` through the official ``openai`` client: the same pipeline as the routes' moderation
step (tests/fixtures/moderation.toml), free as shipped, recorded as usage, never a strike."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import openai
import pytest
from openai.types import ModerationImageURLInputParam

from shared.services import Services
from tests.conftest import AccountFactory
from tests.harness import ApiServer
from tests.integration.helpers import balance
from tests.integration.openai_helpers import async_client, sync_client, usage_records

IMAGE: ModerationImageURLInputParam = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}


async def test_the_official_client_moderates_a_list_of_inputs(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    account = await make_account(credits="1")
    oai = sync_client(api, account)
    inputs = ["a quiet afternoon", "z o r b l a x", "you quibbleflag"]
    result = await asyncio.to_thread(lambda: oai.moderations.create(input=inputs))
    assert result.model == "omni-moderation-latest" and result.id.startswith("modr-")
    calm, violent, rude = result.results
    assert not calm.flagged and not any(calm.categories.model_dump().values())
    assert violent.flagged and violent.categories.violence and not violent.categories.harassment
    assert violent.category_scores.violence == 1.0 and violent.category_applied_input_types.violence == ["text"]
    assert rude.flagged and rude.categories.harassment  # flagged by the policy: reported, whatever its action
    by_alias = violent.categories.model_dump(by_alias=True)
    assert set(by_alias) >= {"sexual/minors", "self-harm/intent", "illicit/violent"}
    assert await balance(client, account) == (Decimal("1"), Decimal("0"))  # free
    [record] = await usage_records(api, account.id)
    assert (record["source"], record["status"], record["model"], record["credits"]) == (
        "moderation", "succeeded", "omni-moderation-latest", 0
    )  # fmt: skip
    events = await services.db.fetchval("SELECT count(*) FROM moderation_events WHERE account_id = $1", account.id)
    assert events == 0  # classifying is not a violation


async def test_a_string_input_and_the_older_model_name(api: ApiServer, make_account: AccountFactory) -> None:
    account = await make_account(credits="1")
    async with async_client(api, account) as oai:
        result = await oai.moderations.create(input="GLORP BOMB", model="text-moderation-latest")
    assert result.model == "text-moderation-latest"
    [only] = result.results
    assert only.flagged and only.categories.violence


async def test_a_priced_moderation_model_is_charged_per_request(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account(credits="1")
    async with async_client(api, account) as oai:
        raw = await oai.moderations.with_raw_response.create(input=["a", "b"], model="test-moderation-priced")
    assert raw.headers["X-Conduit-Credits-Charged"] == "0.25"
    assert len(raw.parse().results) == 2
    assert await balance(client, account) == (Decimal("0.75"), Decimal("0"))
    [record] = await usage_records(api, account.id)
    assert (record["source"], record["status"], record["units"], record["credits"]) == (
        "moderation", "succeeded", {"requests": 1}, 250_000
    )  # fmt: skip


async def test_bad_requests_name_the_field(api: ApiServer, make_account: AccountFactory) -> None:
    account = await make_account(credits="1")
    async with async_client(api, account) as oai:
        with pytest.raises(openai.NotFoundError) as unknown:
            await oai.moderations.create(input="hi", model="test-chat-local")  # not a moderation model
        assert unknown.value.code == "model_not_found"
        with pytest.raises(openai.BadRequestError) as empty:
            await oai.moderations.create(input=[])
        assert isinstance(empty.value.body, dict) and empty.value.body["param"] == "input"
        with pytest.raises(openai.BadRequestError) as image:
            await oai.moderations.create(input=[IMAGE])
        assert isinstance(image.value.body, dict) and image.value.body["param"] == "input[0]"
