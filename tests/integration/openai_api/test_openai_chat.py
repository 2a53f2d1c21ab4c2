"""Chat completions through the official ``openai`` client (sync and async) against a running Conduit.

Models: ``test-up-chat`` (the simulated OpenAI-compatible upstream), ``test-up-chat-fallback`` (a backup
route), ``test-chat-local`` / ``test-chat-local-slow`` (the ``local`` provider; the slow one streams one word
per 200 ms). Prices: 1000 credits per 1M input tokens, 2000 per 1M output tokens.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from shared.accounts.keys import authenticate
from shared.ledger import void_abandoned_request_holds
from shared.openai_api import billing as billing_module
from shared.openai_api.chat import begin
from shared.openai_api.chat_input import ChatInput
from shared.providers.local import count_tokens, reply_text
from shared.services import Services
from tests.conftest import AccountFactory
from tests.harness import ApiServer, wait_for
from tests.integration.helpers import balance
from tests.integration.openai_helpers import async_client, charges, sync_client, token_cost, usage_records
from tests.simulators import Simulators
from tests.simulators.base import Fault

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Name three lighthouses"},
]


async def test_sync_client_plain_chat_is_charged_the_upstreams_reported_tokens(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, sims: Simulators, services: Services
) -> None:
    account = await make_account(credits="10")
    oai = sync_client(api, account)
    completion = await asyncio.to_thread(
        lambda: oai.chat.completions.create(model="test-up-chat", messages=MESSAGES, max_tokens=100, temperature=0.2)
    )
    assert completion.object == "chat.completion"
    assert completion.model == "test-up-chat"
    assert completion.choices[0].message.content == "Simulated reply to: Name three lighthouses"
    assert completion.choices[0].finish_reason == "stop"
    [usage] = sims.openai.usages
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    [call] = sims.openai.calls_to("chat")
    assert call.body == {"model": "sim-llama-8b", "messages": MESSAGES, "max_tokens": 100, "temperature": 0.2,
                         "stream": False}  # fmt: skip
    expected = token_cost(usage["prompt_tokens"], usage["completion_tokens"])
    assert await balance(client, account) == (Decimal("10") - expected, Decimal("0"))
    [record] = await usage_records(api, account.id)
    assert (record["source"], record["status"], record["provider"], record["kind"]) == (
        "chat.completion", "succeeded", "sim-openai", "text"
    )  # fmt: skip
    assert record["units"] == {"input_tokens": usage["prompt_tokens"], "output_tokens": usage["completion_tokens"],
                               "requests": 1}  # fmt: skip
    assert Decimal(record["credits"]) / 1_000_000 == expected
    assert record["latency_ms"] is not None and record["request_id"] is not None


async def test_async_client_plain_chat_on_the_local_provider(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        completion = await oai.chat.completions.create(
            model="test-chat-local",
            messages=[{"role": "user", "content": [{"type": "text", "text": "hello there"}]}],
            max_completion_tokens=6,
            seed=3,
        )
    text, prompt_tokens, completion_tokens = reply_text([{"role": "user", "content": "hello there"}], 6, 3, 0.7)
    assert completion.choices[0].message.content == text
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (prompt_tokens, completion_tokens)
    expected = token_cost(prompt_tokens, completion_tokens)
    assert await balance(client, account) == (Decimal("10") - expected, Decimal("0"))
    assert await charges(api, account.id) == [int(expected * 1_000_000)]


async def test_a_failing_first_route_falls_back_to_the_next(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, sims: Simulators
) -> None:
    account = await make_account(credits="10")
    sims.openai.fail("chat", Fault(500), Fault(503), Fault(502))  # PROVIDER_MAX_ATTEMPTS=3 in tests
    async with async_client(api, account) as oai:
        completion = await oai.chat.completions.create(model="test-up-chat-fallback", messages=MESSAGES, max_tokens=50)
    assert completion.choices[0].message.content == "Simulated reply to: Name three lighthouses"
    assert len(sims.openai.calls_to("chat")) == 3
    [backup_call] = sims.openai_backup.calls_to("chat")
    assert backup_call.body["model"] == "sim-llama-8b-backup"
    [usage] = sims.openai_backup.usages
    expected = token_cost(usage["prompt_tokens"], usage["completion_tokens"])
    assert await balance(client, account) == (Decimal("10") - expected, Decimal("0"))


async def test_streamed_chat_arrives_word_by_word_with_a_usage_chunk_when_asked(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, sims: Simulators, services: Services
) -> None:
    account = await make_account(credits="10")
    sims.openai.stream_delay_s = 0.15
    async with async_client(api, account) as oai:
        stream = await oai.chat.completions.create(
            model="test-up-chat",
            messages=MESSAGES,
            max_tokens=100,
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces: list[tuple[float, str]] = []
        chunks = []
        async for chunk in stream:
            chunks.append(chunk)
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append((time.monotonic(), chunk.choices[0].delta.content))
    assert "".join(text for _, text in pieces) == "Simulated reply to: Name three lighthouses"
    assert len(pieces) == 6
    assert pieces[-1][0] - pieces[0][0] >= 0.5  # incrementally: five more words, 150 ms apart upstream
    assert all(chunk.object == "chat.completion.chunk" and chunk.model == "test-up-chat" for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage is not None
    [usage] = sims.openai.usages
    assert (usage_chunk.usage.prompt_tokens, usage_chunk.usage.completion_tokens) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    [call] = sims.openai.calls_to("chat")
    assert call.body["stream"] is True and call.body["stream_options"] == {"include_usage": True}
    expected = token_cost(usage["prompt_tokens"], usage["completion_tokens"])

    async def settled() -> bool:
        return await balance(client, account) == (Decimal("10") - expected, Decimal("0"))

    await wait_for(settled, timeout=10, what="the streamed completion to be settled")
    [record] = await usage_records(api, account.id)
    assert (record["status"], record["credits"]) == ("succeeded", int(expected * 1_000_000))


async def test_streamed_chat_without_include_usage_sends_no_usage_chunk(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account(credits="10")
    oai = sync_client(api, account)

    def read() -> list[openai.types.chat.ChatCompletionChunk]:
        with oai.chat.completions.create(
            model="test-chat-local", messages=[{"role": "user", "content": "hi"}], stream=True, seed=1, max_tokens=40
        ) as stream:
            return list(stream)

    chunks = await asyncio.to_thread(read)
    assert all(chunk.usage is None for chunk in chunks)
    text, prompt_tokens, completion_tokens = reply_text([{"role": "user", "content": "hi"}], 40, 1, 0.7)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    expected = token_cost(prompt_tokens, completion_tokens)

    async def settled() -> bool:
        return await balance(client, account) == (Decimal("10") - expected, Decimal("0"))

    await wait_for(settled, timeout=10, what="the streamed completion to be settled")


async def test_a_client_that_disconnects_mid_stream_is_charged_once_for_what_was_produced(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    account = await make_account(credits="20")
    prompt = "tell me a long story about lighthouses and the sea"
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": prompt}]
    _, prompt_tokens, full_tokens = reply_text([{"role": "user", "content": prompt}], 200, 9, 0.7)
    async with async_client(api, account) as oai:
        stream = await oai.chat.completions.create(
            model="test-chat-local-slow", messages=messages, max_tokens=200, seed=9, stream=True
        )
        received = []
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
                if len(received) == 3:
                    break
        await stream.close()  # the client goes away mid-answer

    async def record() -> dict[str, object] | None:
        records = await usage_records(api, account.id)
        return records[0] if records else None

    settled = await wait_for(record, timeout=15, what="the cut stream to be settled")
    assert settled["status"] == "canceled"
    units = settled["units"]
    assert isinstance(units, dict)
    # The prompt as the local provider counts it, and the words produced before the stream was closed.
    assert units["input_tokens"] == prompt_tokens
    assert count_tokens("".join(received)) <= units["output_tokens"] < full_tokens
    expected = token_cost(units["input_tokens"], units["output_tokens"])
    assert settled["credits"] == int(expected * 1_000_000)
    assert await charges(api, account.id) == [int(expected * 1_000_000)]
    assert await balance(client, account) == (Decimal("20") - expected, Decimal("0"))
    await asyncio.sleep(0.5)  # the generation would have gone on for seconds: nothing more is charged later
    assert len(await usage_records(api, account.id)) == 1
    assert await charges(api, account.id) == [int(expected * 1_000_000)]


async def test_an_upstream_that_cuts_the_stream_is_charged_for_what_it_produced(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, sims: Simulators, services: Services
) -> None:
    account = await make_account(credits="10")
    sims.openai.stream_cut_after = 2  # "Simulated reply", then the connection drops
    async with async_client(api, account) as oai:
        stream = await oai.chat.completions.create(model="test-up-chat", messages=MESSAGES, max_tokens=100,
                                                   stream=True)  # fmt: skip
        received: list[str] = []

        async def read() -> None:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    received.append(chunk.choices[0].delta.content)

        with pytest.raises(openai.APIError, match="cut the answer short"):
            await read()
    assert "".join(received) == "Simulated reply"
    prompt_estimate = count_tokens("Be brief.") + count_tokens("Name three lighthouses") + 4 + 4 + 2
    expected = token_cost(prompt_estimate, 2)

    async def settled() -> bool:
        return await balance(client, account) == (Decimal("10") - expected, Decimal("0"))

    await wait_for(settled, timeout=10, what="the cut stream to be settled")
    [record] = await usage_records(api, account.id)
    assert (record["status"], record["units"]["output_tokens"]) == ("failed", 2)
    assert await charges(api, account.id) == [int(expected * 1_000_000)]


async def test_a_hold_left_by_a_dead_api_process_is_voided_by_the_sweep(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    account = await make_account(credits="10")
    principal = await authenticate(services.db, account.key)
    body = ChatInput(model="test-chat-local", messages=[{"role": "user", "content": "hi"}], max_tokens=50)
    ctx = await begin(services.db, services.background, services.catalog, services.providers, principal, body,
                      moderator=services.moderator)  # fmt: skip
    # ...then the process "dies"
    assert (await balance(client, account))[1] > 0
    assert await void_abandoned_request_holds(services.db, older_than_s=600) == 0  # too young to be abandoned
    await services.db.execute("UPDATE holds SET created_at = now() - interval '1 hour' WHERE id = $1", ctx.hold_id)
    assert await void_abandoned_request_holds(services.db, older_than_s=600) == 1
    assert await balance(client, account) == (Decimal("10"), Decimal("0"))
    [record] = await usage_records(api, account.id)
    assert (record["source"], record["status"], record["model"], record["credits"]) == (
        "chat.completion", "failed", "test-chat-local", 0
    )  # fmt: skip
    # The request's own settlement, had its process come back, changes nothing now.
    assert await ctx.settle(None, "failed", None) is None
    assert await void_abandoned_request_holds(services.db, older_than_s=600) == 0


@pytest.fixture
def slow_settlements(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Settlements that take half a second to start; returns when each one started committing."""
    started: list[float] = []
    real = billing_module.settle_request

    async def slow(*args: Any, **kwargs: Any) -> int | None:
        await asyncio.sleep(0.5)
        started.append(time.monotonic())
        return await real(*args, **kwargs)

    monkeypatch.setattr(billing_module, "settle_request", slow)
    return started


async def test_a_plain_completion_is_answered_before_it_settles_and_later_reads_see_the_settlement(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, services: Services,
    slow_settlements: list[float],
) -> None:  # fmt: skip
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        raw = await oai.chat.completions.with_raw_response.create(
            model="test-up-chat", messages=MESSAGES, max_tokens=100
        )
    completion = raw.parse()
    assert completion.usage is not None
    expected = token_cost(completion.usage.prompt_tokens, completion.usage.completion_tokens)
    assert Decimal(raw.headers["X-Conduit-Credits-Charged"]) == expected
    # The answer did not wait for the settlement: the hold is still pending in the database.
    statuses = await services.db.fetch("SELECT status FROM holds WHERE account_id = $1", account.id)
    assert [row["status"] for row in statuses] == ["pending"] and slow_settlements == []
    # The account's next read through this API process waits for it, and sees it.
    assert await balance(client, account) == (Decimal("10") - expected, Decimal("0"))
    assert len(slow_settlements) == 1
    assert await charges(api, account.id) == [int(expected * 1_000_000)]


async def test_a_hold_refused_while_an_earlier_request_settles_is_tried_again_once_it_has(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, services: Services,
    slow_settlements: list[float],
) -> None:  # fmt: skip
    # max_tokens=100 holds about 0.22 credits and the answer costs about 0.03: 0.3 credits pay for two
    # requests one after the other, but not two holds at once.
    account = await make_account(credits="0.3")
    async with async_client(api, account) as oai:
        first = await oai.chat.completions.create(model="test-up-chat", messages=MESSAGES, max_tokens=100)
        second = await oai.chat.completions.create(model="test-up-chat", messages=MESSAGES, max_tokens=100)
    assert len(slow_settlements) >= 1  # the second hold waited for the first settlement
    spent = sum(
        token_cost(c.usage.prompt_tokens, c.usage.completion_tokens) for c in (first, second) if c.usage is not None
    )
    assert await balance(client, account) == (Decimal("0.3") - spent, Decimal("0"))
    assert len(await charges(api, account.id)) == 2


async def test_a_settlement_that_loses_its_connection_is_retried(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, services: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    real = billing_module.settle_request
    failures = [ConnectionResetError("connection reset by peer")]

    async def flaky(*args: Any, **kwargs: Any) -> int | None:
        if failures:
            raise failures.pop()
        return await real(*args, **kwargs)

    monkeypatch.setattr(billing_module, "settle_request", flaky)
    monkeypatch.setattr(billing_module, "SETTLE_RETRY_PAUSES_S", (0.01, 0.01))
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        completion = await oai.chat.completions.create(model="test-up-chat", messages=MESSAGES, max_tokens=100)
    assert completion.usage is not None
    expected = token_cost(completion.usage.prompt_tokens, completion.usage.completion_tokens)
    assert await balance(client, account) == (Decimal("10") - expected, Decimal("0"))
    assert failures == [] and await charges(api, account.id) == [int(expected * 1_000_000)]


async def test_a_settlement_that_keeps_failing_leaves_the_hold_to_the_sweep_and_charges_nothing(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, services: Services,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    async def broken(*args: Any, **kwargs: Any) -> int | None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(billing_module, "settle_request", broken)
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        completion = await oai.chat.completions.create(model="test-up-chat", messages=MESSAGES, max_tokens=100)
    assert completion.choices[0].message.content  # the answer went out
    available, held = await balance(client, account)  # waits for the (failed) settlement
    assert held > 0 and available + held == Decimal("10")
    assert any("could not settle request" in record.getMessage() for record in caplog.records)
    monkeypatch.undo()
    await services.db.execute("UPDATE holds SET created_at = now() - interval '1 hour' WHERE account_id = $1",
                              account.id)  # fmt: skip
    assert await void_abandoned_request_holds(services.db, older_than_s=600) == 1
    assert await balance(client, account) == (Decimal("10"), Decimal("0"))
    assert await charges(api, account.id) == []
