"""Image generations, the model list and every error type through the official ``openai`` client.

Each error must raise the client's matching exception (401 ``AuthenticationError``, 402 ``APIStatusError``,
404 ``NotFoundError``, 400 ``BadRequestError``, 429 ``RateLimitError`` with ``Retry-After``, 502/503/504
``InternalServerError``), leave the balance as it was and, once the caller is known, be recorded as usage.
"""

from __future__ import annotations

import asyncio
import base64
import io
from decimal import Decimal

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from PIL import Image

from shared.accounts.keys import create_api_key
from shared.ledger.money import parse_credits
from shared.ratelimits.request_limits import set_account_limits
from shared.services import Services
from tests.conftest import AccountFactory
from tests.harness import ApiServer, InProcessWorker
from tests.integration.helpers import balance
from tests.integration.openai_helpers import async_client, sync_client, token_cost, usage_records
from tests.simulators import Simulators
from tests.simulators.base import Fault

HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


async def test_images_as_urls_through_the_task_pipeline(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker, services: Services
) -> None:
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        result = await oai.images.generate(model="test-image-local", prompt="a red kite", n=2, size="384x256")
    assert result.data is not None and len(result.data) == 2
    async with httpx.AsyncClient() as anonymous:
        for item in result.data:
            assert item.url is not None and item.b64_json is None
            assert item.url.startswith(f"{api.base_url}/v1/files/outputs/")
            image = await anonymous.get(item.url)
            assert image.status_code == 200
            assert Image.open(io.BytesIO(image.content)).size == (384, 256)
    assert await balance(client, account) == (Decimal("9"), Decimal("0"))  # 2 images at 0.5
    [record] = await usage_records(api, account.id)
    assert (record["source"], record["status"], record["kind"], record["credits"]) == ("task", "succeeded", "image",
                                                                                        1_000_000)  # fmt: skip
    assert record["units"]["images"] == 2


async def test_images_as_base64_from_the_simulated_upstream_with_the_sync_client(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker, sims: Simulators
) -> None:
    account = await make_account(credits="10")
    oai = sync_client(api, account)
    result = await asyncio.to_thread(
        lambda: oai.images.generate(
            model="test-up-image-b64", prompt="two foxes", size="512x256", response_format="b64_json"
        )
    )
    assert result.data is not None
    [item] = result.data
    assert item.b64_json is not None and item.url is None
    assert Image.open(io.BytesIO(base64.b64decode(item.b64_json))).size == (512, 256)
    [call] = sims.openai.calls_to("images")
    assert call.body["prompt"] == "two foxes" and call.body["size"] == "512x256"
    assert await balance(client, account) == (Decimal("9.5"), Decimal("0"))


async def test_an_image_generation_that_outlasts_the_wait_names_its_task(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        with pytest.raises(openai.InternalServerError) as caught:
            await oai.images.generate(model="test-image-very-slow", prompt="slow")  # IMAGE_GENERATION_WAIT_S=5
    error = caught.value
    assert error.status_code == 504
    task_id = error.response.headers["X-Conduit-Task-Id"]
    assert f"task {task_id}" in error.message and f"GET /v1/tasks/{task_id}" in error.message
    assert error.response.headers["Location"] == f"/v1/tasks/{task_id}"
    task = await client.get(f"/v1/tasks/{task_id}", headers=account.headers)
    assert task.status_code == 200 and task.json()["status"] in ("queued", "running")
    assert await balance(client, account) == (Decimal("9"), Decimal("1"))  # held while it runs
    canceled = await client.post(f"/v1/tasks/{task_id}/cancel", headers=account.headers)
    assert canceled.status_code == 200
    assert await balance(client, account) == (Decimal("10"), Decimal("0"))


async def test_the_models_list_in_openai_shape(api: ApiServer) -> None:
    async with async_client(api, key="unused") as oai:
        page = await oai.models.list()
        ids = [model.id for model in page.data]
        assert {"test-up-chat", "test-chat-local", "test-image-local"} <= set(ids)
        assert all(model.object == "model" for model in page.data)
        one = await oai.models.retrieve("test-up-chat")
        assert one.id == "test-up-chat"
        with pytest.raises(openai.NotFoundError):
            await oai.models.retrieve("no-such-model")


async def test_an_invalid_key_raises_authentication_error(api: ApiServer) -> None:
    oai = sync_client(api, key="cdt_" + "x" * 40)
    with pytest.raises(openai.AuthenticationError) as caught:
        await asyncio.to_thread(lambda: oai.chat.completions.create(model="test-up-chat", messages=HI))
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"


async def test_insufficient_credits_is_402_and_recorded(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, sims: Simulators, services: Services
) -> None:
    account = await make_account(credits="0.01")
    async with async_client(api, account) as oai:
        with pytest.raises(openai.APIStatusError) as caught:
            await oai.chat.completions.create(model="test-up-chat", messages=HI, max_tokens=1000)
        assert caught.value.status_code == 402 and caught.value.code == "insufficient_credits"
        with pytest.raises(openai.APIStatusError) as image_error:
            await oai.images.generate(model="test-image-local", prompt="x", n=4)
        assert image_error.value.status_code == 402
    assert sims.openai.calls_to("chat") == []
    assert await balance(client, account) == (Decimal("0.01"), Decimal("0"))
    records = await usage_records(api, account.id)
    assert [(r["source"], r["status"], r["credits"]) for r in records] == [
        ("chat.completion", "failed", 0),
        ("image.generation", "failed", 0),
    ]


async def test_unknown_models_raise_not_found(api: ApiServer, make_account: AccountFactory) -> None:
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        with pytest.raises(openai.NotFoundError) as caught:
            await oai.chat.completions.create(model="gpt-9-imaginary", messages=HI)
        assert caught.value.code == "model_not_found"
        with pytest.raises(openai.NotFoundError):
            await oai.chat.completions.create(model="test-image-local", messages=HI)  # not a chat model
        with pytest.raises(openai.NotFoundError):
            await oai.images.generate(model="test-chat-local", prompt="x")  # not an image model


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"messages": HI, "temperature": 5}, "temperature"),
        ({"messages": [], "max_tokens": 10}, "messages"),
        ({"messages": HI, "max_tokens": 0}, "max_tokens"),
        ({"messages": HI, "n": 2}, "n"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
         "messages[0].content"),
    ],
)  # fmt: skip
async def test_bad_parameters_raise_bad_request(
    api: ApiServer,
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    services: Services,
    kwargs: dict[str, object],
    param: str,
) -> None:
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        with pytest.raises(openai.BadRequestError) as caught:
            await oai.chat.completions.create(model="test-chat-local", **kwargs)  # type: ignore[call-overload]
    assert caught.value.status_code == 400
    assert caught.value.param is not None and caught.value.param.startswith(param)
    assert await balance(client, account) == (Decimal("10"), Decimal("0"))
    [record] = await usage_records(api, account.id)
    assert (record["source"], record["status"], record["model"], record["credits"]) == (
        "chat.completion", "failed", "test-chat-local", 0
    )  # fmt: skip


async def test_a_body_that_is_not_a_chat_request_is_bad_request(api: ApiServer, make_account: AccountFactory) -> None:
    account = await make_account(credits="10")
    async with httpx.AsyncClient(base_url=api.base_url) as raw:
        response = await raw.post("/v1/chat/completions", json={"model": 3}, headers=account.headers)
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"type", "code", "message", "param"}
    async with async_client(api, account) as oai:
        with pytest.raises(openai.BadRequestError):
            await oai.images.generate(model="test-image-local", prompt="x", size="big")


async def test_rate_limited_requests_raise_rate_limit_error_with_retry_after(
    api: ApiServer, make_account: AccountFactory, services: Services
) -> None:
    account = await make_account(credits="10")
    await set_account_limits(services.db, services.redis, account.id, rpm=1)
    async with async_client(api, account) as oai:
        await oai.chat.completions.create(model="test-chat-local", messages=HI, max_tokens=5)
        with pytest.raises(openai.RateLimitError) as caught:
            await oai.chat.completions.create(model="test-chat-local", messages=HI, max_tokens=5)
    assert caught.value.status_code == 429
    assert int(caught.value.response.headers["Retry-After"]) >= 1


async def test_an_upstream_outage_is_502_and_costs_nothing(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, sims: Simulators, services: Services
) -> None:
    account = await make_account(credits="10")
    sims.openai.fail("chat", Fault(500), Fault(502), Fault(503))
    async with async_client(api, account) as oai:
        with pytest.raises(openai.InternalServerError) as caught:
            await oai.chat.completions.create(model="test-up-chat", messages=HI, max_tokens=10)
    assert caught.value.status_code == 502
    assert "sim-openai" in caught.value.message
    assert len(sims.openai.calls_to("chat")) == 3  # retried by Conduit, not by the client (max_retries=0)
    assert await balance(client, account) == (Decimal("10"), Decimal("0"))
    [record] = await usage_records(api, account.id)
    assert (record["source"], record["status"], record["credits"]) == ("chat.completion", "failed", 0)


async def test_an_upstream_refusal_is_bad_request(
    api: ApiServer, make_account: AccountFactory, sims: Simulators
) -> None:
    account = await make_account(credits="10")
    refusal = {"error": {"message": "flagged", "type": "invalid_request_error", "code": "content_policy_violation"}}
    sims.openai.fail("chat", Fault(400, body=refusal))
    async with async_client(api, account) as oai:
        with pytest.raises(openai.BadRequestError) as caught:
            await oai.chat.completions.create(model="test-up-chat", messages=HI, max_tokens=10, stream=True)
    assert caught.value.code == "content_policy_violation"


async def test_a_key_spend_cap_bounds_chat_completions(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    account = await make_account(credits="50")
    async with services.db.transaction() as conn:
        capped = await create_api_key(conn, account_id=account.id, name="capped", spend_cap=parse_credits("1"))
    async with async_client(api, key=capped.secret) as oai:
        # 100 output tokens at 2000 credits per 1M: the worst case fits under the cap of 1 credit
        done = await oai.chat.completions.create(model="test-chat-local", messages=HI, max_tokens=100, seed=2)
        with pytest.raises(openai.APIStatusError) as caught:  # 4096 tokens (the model's cap) would not
            await oai.chat.completions.create(model="test-chat-local", messages=HI)
    assert caught.value.status_code == 402 and caught.value.code == "spend_cap_exceeded"
    assert done.usage is not None
    charged = token_cost(done.usage.prompt_tokens, done.usage.completion_tokens)
    row = await services.db.fetchrow("SELECT spent, cap_held FROM api_keys WHERE id = $1", capped.id)
    assert row is not None and (row["spent"], row["cap_held"]) == (int(charged * 1_000_000), 0)
    assert await balance(client, account) == (Decimal("50") - charged, Decimal("0"))


async def test_a_model_with_no_usable_provider_is_503(api: ApiServer, make_account: AccountFactory) -> None:
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        with pytest.raises(openai.InternalServerError) as caught:
            await oai.chat.completions.create(model="test-up-nokey", messages=HI)
    assert caught.value.status_code == 503
    assert caught.value.code == "model_unavailable"
