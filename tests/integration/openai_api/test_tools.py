"""Tool calling through the official ``openai`` client: tools reach the upstream as sent, tool calls come back
(plain and streamed exactly as OpenAI streams them), a tool round trip answers from the result, and the tool
schemas count in the hold.

Models: ``test-up-tools`` (the simulated OpenAI-compatible upstream, every capability), ``test-chat-tools``
(the ``local`` provider, every capability). Prices: 1000 / 2000 credits per 1M input / output tokens.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from shared.services import Services
from tests.conftest import AccountFactory
from tests.harness import ApiServer
from tests.integration.helpers import balance
from tests.integration.openai_helpers import async_client, charges, sync_client, token_cost, usage_records
from tests.simulators import Simulators

WEATHER: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city", "unit"],
        },
    },
}
TIME: ChatCompletionToolParam = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}}},
}
ASK: list[ChatCompletionMessageParam] = [{"role": "user", "content": "What is the weather in Paris?"}]


async def test_a_tool_call_from_the_upstream_comes_back_with_finish_reason_tool_calls(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, sims: Simulators, services: Services
) -> None:
    account = await make_account(credits="10")
    oai = sync_client(api, account)
    completion = await asyncio.to_thread(
        lambda: oai.chat.completions.create(
            model="test-up-tools", messages=ASK, tools=[WEATHER, TIME], tool_choice="auto", parallel_tool_calls=False,
            max_tokens=50,
        )
    )  # fmt: skip
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.id == "call_sim_0"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "c"}
    [sent] = sims.openai.calls_to("chat")
    assert sent.body["tools"] == [WEATHER, TIME]
    assert (sent.body["tool_choice"], sent.body["parallel_tool_calls"]) == ("auto", False)
    assert completion.model == "test-up-tools"
    assert completion.model_extra is not None and completion.model_extra["provider"] == "sim-openai"
    [usage] = sims.openai.usages
    expected = token_cost(usage["prompt_tokens"], usage["completion_tokens"])
    assert await balance(client, account) == (Decimal("10") - expected, Decimal("0"))
    [record] = await usage_records(api, account.id)
    assert (record["status"], record["provider"], record["credits"]) == ("succeeded", "sim-openai",
                                                                         int(expected * 1_000_000))  # fmt: skip


async def test_a_tool_round_trip_sends_the_calls_and_results_back_and_gets_the_answer(
    api: ApiServer, make_account: AccountFactory, sims: Simulators
) -> None:
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        first = await oai.chat.completions.create(model="test-up-tools", messages=ASK, tools=[WEATHER])
        message = first.choices[0].message
        [call] = message.tool_calls or []
        history: list[Any] = [*ASK, message.model_dump(exclude_none=True),
                              {"role": "tool", "tool_call_id": call.id, "content": '{"temp": 21}'}]  # fmt: skip
        second = await oai.chat.completions.create(model="test-up-tools", messages=history, tools=[WEATHER])
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == 'Simulated answer from tools: {"temp": 21}'
    sent = sims.openai.calls_to("chat")[1].body["messages"]
    assert sent[1] == {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]}
    assert sent[2] == {"role": "tool", "content": '{"temp": 21}', "tool_call_id": call.id}


async def test_streamed_tool_calls_arrive_as_openai_streams_them_and_the_client_assembles_them(
    api: ApiServer, make_account: AccountFactory, sims: Simulators
) -> None:
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        stream = await oai.chat.completions.create(
            model="test-up-tools", messages=[{"role": "user", "content": "weather and time in Oslo?"}],
            tools=[WEATHER, TIME], stream=True, stream_options={"include_usage": True},
        )  # fmt: skip
        chunks = [chunk async for chunk in stream]
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    first = deltas[0]
    assert first.role == "assistant" and first.content is None and first.tool_calls is not None
    head = first.tool_calls[0]
    assert (head.index, head.id, head.type) == (0, "call_sim_0", "function")
    assert head.function is not None and (head.function.name, head.function.arguments) == ("get_weather", "")
    # then argument pieces: no id, no name, only the arguments of the call at that index
    pieces = [d.tool_calls[0] for d in deltas[1:] if d.tool_calls and d.tool_calls[0].id is None]
    assert pieces and all(p.function is not None and p.function.name is None for p in pieces)
    arguments: dict[int, str] = {}
    names: dict[int, str] = {}
    for delta in deltas:
        for piece in delta.tool_calls or []:
            assert piece.function is not None
            names[piece.index] = names.get(piece.index, "") + (piece.function.name or "")
            arguments[piece.index] = arguments.get(piece.index, "") + (piece.function.arguments or "")
    assert names == {0: "get_weather", 1: "get_time"}  # parallel calls: both tools named in the message
    assert json.loads(arguments[0]) == {"city": "Oslo", "unit": "c"} and json.loads(arguments[1]) == {"zone": "Oslo"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == sims.openai.usages[0][
        "completion_tokens"]  # fmt: skip


async def test_the_local_provider_calls_a_named_tool_then_answers_from_its_result(
    api: ApiServer, make_account: AccountFactory
) -> None:
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        first = await oai.chat.completions.create(
            model="test-chat-tools", messages=ASK, tools=[WEATHER, TIME], tool_choice="required", seed=4
        )
        [call] = first.choices[0].message.tool_calls or []
        assert first.choices[0].finish_reason == "tool_calls"
        assert call.function.name == "get_weather"  # type: ignore[union-attr]
        assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "c"}  # type: ignore[union-attr]
        again = await oai.chat.completions.create(
            model="test-chat-tools", messages=ASK, tools=[WEATHER, TIME], tool_choice="required", seed=4
        )
        assert again.choices[0].message.tool_calls == first.choices[0].message.tool_calls  # deterministic
        named = await oai.chat.completions.create(
            model="test-chat-tools", messages=ASK, tools=[WEATHER, TIME],
            tool_choice={"type": "function", "function": {"name": "get_time"}},
        )  # fmt: skip
        assert [c.function.name for c in named.choices[0].message.tool_calls or []] == ["get_time"]  # type: ignore[union-attr]
        none = await oai.chat.completions.create(model="test-chat-tools", messages=ASK, tools=[WEATHER],
                                                 tool_choice="none")  # fmt: skip
        assert none.choices[0].message.tool_calls is None and none.choices[0].finish_reason in ("stop", "length")
        answer = await oai.chat.completions.create(
            model="test-chat-tools", tools=[WEATHER],
            messages=[*ASK, first.choices[0].message.model_dump(exclude_none=True),  # type: ignore[list-item]
                      {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}],
        )  # fmt: skip
    assert answer.choices[0].message.content == "Tool get_weather returned: sunny, 21 C"
    assert answer.choices[0].finish_reason == "stop"


async def test_the_local_provider_streams_tool_call_deltas(api: ApiServer, make_account: AccountFactory) -> None:
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        stream = await oai.chat.completions.create(model="test-chat-tools", messages=ASK, tools=[WEATHER], stream=True,
                                                   seed=5)  # fmt: skip
        chunks = [chunk async for chunk in stream]
        plain = await oai.chat.completions.create(model="test-chat-tools", messages=ASK, tools=[WEATHER], seed=5)
    [call] = plain.choices[0].message.tool_calls or []
    assert chunks[0].choices[0].delta.tool_calls is not None
    head = chunks[0].choices[0].delta.tool_calls[0]
    assert (head.id, head.function.name, head.function.arguments) == (call.id, "get_weather", "")  # type: ignore[union-attr]
    streamed = "".join(c.choices[0].delta.tool_calls[0].function.arguments or ""  # type: ignore[union-attr]
                       for c in chunks if c.choices and c.choices[0].delta.tool_calls)  # fmt: skip
    assert streamed == call.function.arguments  # type: ignore[union-attr]
    assert len([c for c in chunks if c.choices and c.choices[0].delta.tool_calls]) > 2  # in pieces
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_the_tool_schemas_count_in_the_hold(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    # A token costs 0.001 credits in and 0.002 out. With 1 credit, the question and 10 output tokens hold ~0.07
    # credits, with the weather tool's schema (~270 bytes) ~0.34; a tool described in 2,000 bytes cannot be held.
    big = {"type": "function", "function": {"name": "big", "description": "x" * 2_000, "parameters": {}}}
    account = await make_account(credits="1")
    async with async_client(api, account) as oai:
        await oai.chat.completions.create(model="test-chat-tools", messages=ASK, max_tokens=10, tools=[WEATHER])
        with pytest.raises(openai.APIStatusError) as refused:
            await oai.chat.completions.create(model="test-chat-tools", messages=ASK, max_tokens=10, tools=[big])  # type: ignore[list-item]
    assert refused.value.status_code == 402 and refused.value.code == "insufficient_credits"
    assert len(await charges(api, account.id)) == 1
    assert (await balance(client, account))[1] == 0
