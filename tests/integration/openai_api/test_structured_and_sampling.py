"""Structured outputs, sampling and output controls: forwarded to the upstream exactly as sent, honoured by the
``local`` provider so that a test can tell they arrived; ``n`` choices held and charged for all; the upstream's
usage details passed through, cached input tokens priced lower and kept in the usage record."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from shared.providers.local import reply_text
from shared.services import Services
from tests.conftest import AccountFactory
from tests.harness import ApiServer
from tests.integration.helpers import balance
from tests.integration.openai_helpers import async_client, charges, token_cost, usage_records
from tests.simulators import Simulators

HI: list[Any] = [{"role": "user", "content": "Describe the harbour of Porto"}]
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer", "minimum": 1},
                   "coastal": {"type": "boolean"}, "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["city", "population", "coastal", "tags"],
    "additionalProperties": False,
}  # fmt: skip


class Place(BaseModel):
    city: str
    population: int
    coastal: bool
    tags: list[str]


async def test_sampling_and_output_fields_reach_the_upstream_exactly(
    api: ApiServer, make_account: AccountFactory, sims: Simulators
) -> None:
    account = await make_account(credits="10")
    fields: dict[str, Any] = {"stop": ["\n", "END"], "top_p": 0.9, "frequency_penalty": 0.5, "presence_penalty": -0.5,
                              "logit_bias": {"50256": -100}, "seed": 7, "user": "end-user-42", "logprobs": True,
                              "top_logprobs": 3, "n": 2, "response_format": {"type": "json_object"}}  # fmt: skip
    async with async_client(api, account) as oai:
        completion = await oai.chat.completions.create(model="test-up-tools", messages=HI, max_tokens=40, **fields)
    [call] = sims.openai.calls_to("chat")
    assert call.body == {"model": "sim-tools", "messages": HI, "max_tokens": 40, "temperature": 0.7, "stream": False,
                         **fields}  # fmt: skip
    assert [json.loads(c.message.content or "") for c in completion.choices] == [
        {"reply": "Simulated reply to: Describe the harbour of Porto"},
        {"reply": "Simulated reply to: Describe the harbour of Porto #1"},
    ]
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert [len(entry.top_logprobs) for entry in logprobs.content] == [3] * len(logprobs.content)


async def test_json_mode_and_json_schema_on_the_local_provider(api: ApiServer, make_account: AccountFactory) -> None:
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        json_mode = await oai.chat.completions.create(
            model="test-chat-tools", messages=HI, response_format={"type": "json_object"}, seed=1
        )
        schema = await oai.chat.completions.create(
            model="test-chat-tools", messages=HI, seed=1,
            response_format={"type": "json_schema", "json_schema": {"name": "place", "schema": SCHEMA, "strict": True}},
        )  # fmt: skip
        parsed = await oai.chat.completions.parse(model="test-chat-tools", messages=HI, response_format=Place)
    assert set(json.loads(json_mode.choices[0].message.content or "")) == {"reply"}
    value = json.loads(schema.choices[0].message.content or "")
    assert value["city"] == "Porto" and isinstance(value["population"], int) and value["population"] >= 1
    assert value["coastal"] is True and value["tags"] and all(isinstance(tag, str) for tag in value["tags"])
    assert isinstance(parsed.choices[0].message.parsed, Place)  # the client's own validation against the model


async def test_stop_n_seed_and_logprobs_on_the_local_provider(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    account = await make_account(credits="10")
    full, _, _ = reply_text([{"role": "user", "content": HI[0]["content"]}], 60, 11, 0.7)
    stop = full.split(" ")[6]  # a word in the middle of the reply
    async with async_client(api, account) as oai:
        plain = await oai.chat.completions.create(model="test-chat-tools", messages=HI, max_tokens=60, seed=11)
        stopped = await oai.chat.completions.create(model="test-chat-tools", messages=HI, max_tokens=60, seed=11,
                                                    stop=[stop])  # fmt: skip
        three = await oai.chat.completions.create(model="test-chat-tools", messages=HI, max_tokens=60, seed=11, n=3,
                                                  logprobs=True, top_logprobs=2)  # fmt: skip
    assert plain.choices[0].message.content == full
    assert stopped.choices[0].message.content == full[: full.index(stop)].rstrip()
    assert stopped.choices[0].finish_reason == "stop"
    texts = [c.message.content for c in three.choices]
    assert texts[0] == full and len(set(texts)) == 3  # choice i drawn with seed + i
    assert [c.index for c in three.choices] == [0, 1, 2]
    for choice in three.choices:
        assert choice.logprobs is not None and choice.logprobs.content is not None
        assert "".join(e.token for e in choice.logprobs.content) == choice.message.content
        assert all(e.logprob <= 0 and len(e.top_logprobs) == 2 and e.bytes == list(e.token.encode())
                   for e in choice.logprobs.content)  # fmt: skip
    # n choices are charged for all: the usage counts every choice's tokens
    assert three.usage is not None and plain.usage is not None
    assert three.usage.completion_tokens > 2 * plain.usage.completion_tokens
    records = await usage_records(api, account.id)
    assert records[-1]["units"]["output_tokens"] == three.usage.completion_tokens
    expected = token_cost(three.usage.prompt_tokens, three.usage.completion_tokens)
    assert (await charges(api, account.id))[-1] == int(expected * 1_000_000)


async def test_n_choices_are_held_for_all(api: ApiServer, make_account: AccountFactory) -> None:
    # 1 credit: max_tokens 150 holds 0.3 credits of output for one choice, 1.2 for four
    account = await make_account(credits="1")
    async with async_client(api, account) as oai:
        await oai.chat.completions.create(model="test-chat-tools", messages=HI, max_tokens=150, n=1)
        with pytest.raises(openai.APIStatusError) as four:
            await oai.chat.completions.create(model="test-chat-tools", messages=HI, max_tokens=150, n=4)
    assert four.value.status_code == 402


async def test_streamed_n_choices_and_logprobs(api: ApiServer, make_account: AccountFactory) -> None:
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        stream = await oai.chat.completions.create(model="test-chat-tools", messages=HI, max_tokens=30, seed=3, n=2,
                                                   logprobs=True, stream=True)  # fmt: skip
        chunks = [chunk async for chunk in stream]
        plain = await oai.chat.completions.create(model="test-chat-tools", messages=HI, max_tokens=30, seed=3, n=2,
                                                  logprobs=True)  # fmt: skip
    for choice in plain.choices:
        pieces = [c.choices[0] for c in chunks if c.choices and c.choices[0].index == choice.index]
        assert "".join(p.delta.content or "" for p in pieces) == choice.message.content
        tokens = [e.token for p in pieces if p.logprobs and p.logprobs.content for e in p.logprobs.content]
        assert choice.logprobs is not None and choice.logprobs.content is not None
        assert tokens == [e.token for e in choice.logprobs.content]
        assert [p.finish_reason for p in pieces if p.finish_reason] == [choice.finish_reason]


async def test_usage_details_pass_through_and_cached_tokens_are_priced_lower(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, sims: Simulators, services: Services
) -> None:
    sims.openai.cached_tokens = 4
    sims.openai.reasoning_tokens = 2
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        completion = await oai.chat.completions.create(model="test-up-tools", messages=HI, max_tokens=40)
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens_details is not None and usage.completion_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 4
    assert usage.completion_tokens_details.reasoning_tokens == 2
    # test-up-tools: 1000 credits per 1M input tokens, 250 per 1M cached ones, 2000 per 1M output
    expected = Decimal((usage.prompt_tokens - 4) * 1000 + 4 * 250 + usage.completion_tokens * 2000) / 1_000_000
    assert await balance(client, account) == (Decimal("10") - expected, Decimal("0"))
    [record] = await usage_records(api, account.id)
    assert record["units"] == {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens,
                               "cached_input_tokens": 4, "reasoning_tokens": 2, "requests": 1}  # fmt: skip
