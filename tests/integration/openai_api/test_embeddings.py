"""``POST /v1/embeddings`` through the official client: both encodings, ``dimensions``, the ``local`` route's
deterministic unit vectors and the simulated upstream; priced per input token, held, recorded, rate limited."""

from __future__ import annotations

import asyncio
import math
from decimal import Decimal

import httpx
import openai
import pytest

from shared.providers.embeddings import local_vector
from shared.providers.local import count_tokens
from shared.ratelimits.request_limits import set_account_limits
from shared.services import Services
from tests.conftest import AccountFactory
from tests.harness import ApiServer
from tests.integration.helpers import balance
from tests.integration.openai_helpers import async_client, charges, sync_client, usage_records
from tests.simulators import Simulators
from tests.simulators.openai import embedding

TEXTS = ["a lighthouse at dusk", "the harbour of Porto"]


async def test_local_embeddings_in_both_encodings_are_deterministic_unit_vectors(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    account = await make_account(credits="10")
    oai = sync_client(api, account)
    floats = await asyncio.to_thread(
        lambda: oai.embeddings.create(model="test-embed-local", input=TEXTS, encoding_format="float")
    )
    # no encoding_format: the client asks for base64 and decodes it itself
    decoded = await asyncio.to_thread(lambda: oai.embeddings.create(model="test-embed-local", input=TEXTS))
    async with httpx.AsyncClient(base_url=api.base_url) as raw:
        body = {"model": "test-embed-local", "input": TEXTS[0], "encoding_format": "base64"}
        b64 = (await raw.post("/v1/embeddings", headers=account.headers, json=body)).json()
    assert isinstance(b64["data"][0]["embedding"], str)
    assert [item.index for item in floats.data] == [0, 1]
    for text, item, other in zip(TEXTS, floats.data, decoded.data, strict=True):
        assert len(item.embedding) == 64
        assert math.isclose(math.fsum(x * x for x in item.embedding), 1.0, rel_tol=1e-9)
        assert item.embedding == local_vector(text, 64, 64)
        assert other.embedding == pytest.approx(item.embedding, abs=1e-6)  # float32 over the wire
    assert floats.model == "test-embed-local" and floats.object == "list"
    tokens = sum(count_tokens(text) for text in TEXTS)
    assert floats.usage.prompt_tokens == tokens == floats.usage.total_tokens
    # 100 credits per 1M input tokens, three requests (two of both texts, one of the first)
    spent = Decimal(2 * tokens + count_tokens(TEXTS[0])) * 100 / 1_000_000
    assert await balance(client, account) == (Decimal("10") - spent, Decimal("0"))
    records = await usage_records(api, account.id)
    assert [(r["source"], r["kind"], r["status"], r["provider"]) for r in records] == [
        ("embedding", "embedding", "succeeded", "local")] * 3  # fmt: skip
    assert records[0]["units"] == {"input_tokens": tokens, "output_tokens": 0, "requests": 1}


async def test_dimensions_shorten_the_vector_where_the_model_allows_it(
    api: ApiServer, make_account: AccountFactory
) -> None:
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        short = await oai.embeddings.create(model="test-embed-local", input="hello", dimensions=8,
                                            encoding_format="float")  # fmt: skip
        with pytest.raises(openai.BadRequestError) as fixed:
            await oai.embeddings.create(model="test-embed-fixed", input="hello", dimensions=8)
        with pytest.raises(openai.BadRequestError) as too_big:
            await oai.embeddings.create(model="test-embed-local", input="hello", dimensions=65)
        same = await oai.embeddings.create(model="test-embed-fixed", input="hello", dimensions=16)
    [item] = short.data
    assert item.embedding == local_vector("hello", 64, 8)
    assert math.isclose(math.fsum(x * x for x in item.embedding), 1.0, rel_tol=1e-6)
    assert fixed.value.param == "dimensions" and too_big.value.param == "dimensions"
    assert len(same.data[0].embedding) == 16


async def test_embeddings_from_the_simulated_upstream(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, sims: Simulators, services: Services
) -> None:
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        result = await oai.embeddings.create(model="test-up-embed", input=TEXTS, dimensions=12, user="u-1")
        full = await oai.embeddings.create(model="test-up-embed", input=TEXTS[0], encoding_format="float")
    first, second = sims.openai.calls_to("embeddings")
    assert first.body == {"model": "sim-embed", "input": TEXTS, "dimensions": 12, "user": "u-1"}
    assert second.body == {"model": "sim-embed", "input": [TEXTS[0]]}  # the model's own size: nothing to ask
    for text, item in zip(TEXTS, result.data, strict=True):
        assert item.embedding == pytest.approx(embedding(text, 12), abs=1e-6)
    assert full.data[0].embedding == pytest.approx(embedding(TEXTS[0], 32), abs=1e-12)
    tokens = sum(len(text.split()) for text in TEXTS)  # the simulator's count
    assert result.usage.prompt_tokens == tokens
    assert (await charges(api, account.id))[0] == math.ceil(tokens * 100)  # 100 credits per 1M: 100 µ/token
    records = await usage_records(api, account.id)
    assert records[0]["provider"] == "sim-openai" and records[0]["model"] == "test-up-embed"


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "test-embed-local", "input": []}, 400, "input"),
        ({"model": "test-embed-local", "input": [1, 2, 3]}, 400, "input"),
        ({"model": "test-embed-local", "input": ["ok", ""]}, 400, "input[1]"),
        ({"model": "test-embed-local", "input": ["x"] * 17}, 400, "input"),
        ({"model": "test-embed-local", "input": "x", "encoding_format": "int8"}, 400, "encoding_format"),
        ({"model": "test-embed-local", "input": "x", "truncate": "END"}, 400, "truncate"),
        ({"model": "test-chat-local", "input": "x"}, 404, "model"),
        ({"model": "no-such-model", "input": "x"}, 404, "model"),
    ],
)
async def test_bad_embedding_requests_are_refused_naming_the_field(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, body: dict[str, object], status: int,
    param: str,
) -> None:  # fmt: skip
    account = await make_account(credits="10")
    async with httpx.AsyncClient(base_url=api.base_url) as raw:
        response = await raw.post("/v1/embeddings", headers=account.headers, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param
    assert await balance(client, account) == (Decimal("10"), Decimal("0"))


async def test_embeddings_are_held_and_rate_limited_like_chat(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    account = await make_account(credits="0.001")  # a token costs 0.0001 credits: 2,000 bytes may need 0.2
    # Set before the account's first request: a change reaches API processes that cached the account a moment later.
    await set_account_limits(services.db, services.redis, account.id, rpm=2)
    async with async_client(api, account) as oai:
        with pytest.raises(openai.APIStatusError) as poor:  # counted: one of the two requests this minute
            await oai.embeddings.create(model="test-embed-local", input="word " * 400)
        await oai.embeddings.create(model="test-embed-local", input="ok")
        with pytest.raises(openai.RateLimitError):
            await oai.embeddings.create(model="test-embed-local", input="ok")
    assert poor.value.status_code == 402 and poor.value.code == "insufficient_credits"
    records = await usage_records(api, account.id)
    assert [(r["source"], r["status"]) for r in records] == [("embedding", "failed"), ("embedding", "succeeded")]
