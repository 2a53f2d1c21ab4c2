"""Legacy ``POST /v1/completions`` through the official client: the prompt answered as a ``text_completion``,
plain and streamed, with ``n``, ``stop``, ``echo`` and legacy ``logprobs``; billed and recorded like a chat
completion (``source`` ``text_completion``)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import openai
import pytest

from shared.providers.local import reply_text
from shared.services import Services
from tests.conftest import AccountFactory
from tests.harness import ApiServer
from tests.integration.helpers import balance
from tests.integration.openai_helpers import async_client, sync_client, token_cost, usage_records
from tests.simulators import Simulators

PROMPT = "Once upon a time in a lighthouse"


async def test_a_prompt_is_answered_as_a_text_completion_and_charged(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    account = await make_account(credits="10")
    oai = sync_client(api, account)
    completion = await asyncio.to_thread(
        lambda: oai.completions.create(model="test-chat-tools", prompt=PROMPT, max_tokens=10, seed=2)
    )
    text, prompt_tokens, completion_tokens = reply_text([{"role": "user", "content": PROMPT}], 10, 2, 0.7)
    assert completion.object == "text_completion" and completion.id.startswith("cmpl-")
    [choice] = completion.choices
    assert (choice.text, choice.index, choice.finish_reason, choice.logprobs) == (text, 0, "length", None)
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (prompt_tokens, completion_tokens)
    expected = token_cost(prompt_tokens, completion_tokens)
    assert await balance(client, account) == (Decimal("10") - expected, Decimal("0"))
    [record] = await usage_records(api, account.id)
    assert (record["source"], record["status"], record["kind"]) == ("text_completion", "succeeded", "text")


async def test_the_default_max_tokens_is_sixteen_and_the_prompt_goes_upstream_as_a_user_message(
    api: ApiServer, make_account: AccountFactory, sims: Simulators
) -> None:
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        completion = await oai.completions.create(model="test-up-tools", prompt=PROMPT, stop=["lighthouse"], n=2)
    [call] = sims.openai.calls_to("chat")
    assert call.body["messages"] == [{"role": "user", "content": PROMPT}]
    assert (call.body["max_tokens"], call.body["stop"], call.body["n"]) == (16, ["lighthouse"], 2)
    assert [c.text for c in completion.choices] == ["Simulated reply to: Once upon a time in a "] * 2
    assert completion.model_extra is not None and completion.model_extra["provider"] == "sim-openai"


async def test_echo_and_legacy_logprobs(api: ApiServer, make_account: AccountFactory) -> None:
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        echoed = await oai.completions.create(model="test-chat-tools", prompt=PROMPT, max_tokens=8, seed=1, echo=True)
        scored = await oai.completions.create(model="test-chat-tools", prompt=PROMPT, max_tokens=8, seed=1, logprobs=2)
        with pytest.raises(openai.BadRequestError) as both:
            await oai.completions.create(model="test-chat-tools", prompt=PROMPT, echo=True, logprobs=1)
        with pytest.raises(openai.BadRequestError) as suffix:
            await oai.completions.create(model="test-chat-tools", prompt=PROMPT, suffix="The end.")
        with pytest.raises(openai.BadRequestError) as no_logprobs:
            await oai.completions.create(model="test-chat-local", prompt=PROMPT, logprobs=1)
    text, _, _ = reply_text([{"role": "user", "content": PROMPT}], 8, 1, 0.7)
    assert echoed.choices[0].text == PROMPT + text
    logprobs = scored.choices[0].logprobs
    assert logprobs is not None and logprobs.tokens is not None and logprobs.top_logprobs is not None
    assert "".join(logprobs.tokens) == scored.choices[0].text == text
    assert logprobs.text_offset == [sum(len(t) for t in logprobs.tokens[:i]) for i in range(len(logprobs.tokens))]
    assert all(len(top) == 2 for top in logprobs.top_logprobs)
    assert (both.value.param, suffix.value.param, no_logprobs.value.param) == ("echo", "suffix", "logprobs")


async def test_a_streamed_text_completion(api: ApiServer, make_account: AccountFactory) -> None:
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        stream = await oai.completions.create(
            model="test-chat-tools", prompt=PROMPT, max_tokens=20, seed=5, stream=True, echo=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        chunks = [chunk async for chunk in stream]
    text, prompt_tokens, completion_tokens = reply_text([{"role": "user", "content": PROMPT}], 20, 5, 0.7)
    assert all(chunk.object == "text_completion" for chunk in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == PROMPT + text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (prompt_tokens, completion_tokens)
