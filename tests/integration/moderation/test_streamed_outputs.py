"""Streamed chat answers of a model whose outputs the policy moderates (test-chat-local; its answer to
"glorbnik" is illicit, blocked) are checked on their accumulated text when the upstream has finished: a blocked
answer ends with an ``error`` event instead of its finish, usage and ``[DONE]``, and is not charged."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx

from shared.services import Services
from tests.conftest import AccountFactory
from tests.harness import ApiServer
from tests.integration.helpers import balance
from tests.integration.openai_helpers import charges, usage_records


async def _stream(client: httpx.AsyncClient, headers: dict[str, str], content: str, path: str = "chat") -> list[Any]:
    """The events of a streamed answer, in order (``[DONE]`` as the string)."""
    body: dict[str, Any]
    if path == "chat":
        url, body = "/v1/chat/completions", {"messages": [{"role": "user", "content": content}]}
    else:
        url, body = "/v1/completions", {"prompt": content}
    request = {"model": "test-chat-local", "stream": True, "stream_options": {"include_usage": True}, **body}
    events: list[Any] = []
    async with client.stream("POST", url, headers=headers, json=request) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                data = line.removeprefix("data: ")
                events.append(data if data == "[DONE]" else json.loads(data))
    return events


async def test_a_blocked_streamed_answer_ends_with_an_error_event_and_is_not_charged(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    account = await make_account(credits="10")
    events = await _stream(client, account.headers, "glorbnik")
    *chunks, last = events
    # what the client already received: the text deltas of the answer, never its finish, usage nor [DONE]
    assert chunks and all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert any(chunk["choices"][0]["delta"].get("content") for chunk in chunks)
    assert all(choice["finish_reason"] is None for chunk in chunks for choice in chunk["choices"])
    assert not any("usage" in chunk for chunk in chunks)
    assert "[DONE]" not in events
    assert last == {"error": {"type": "invalid_request_error", "code": "content_policy_violation", "param": None,
                              "message": last["error"]["message"]}}  # fmt: skip
    assert "generated output" in last["error"]["message"] and "category: illicit" in last["error"]["message"]

    assert await charges(api, account.id) == []
    [record] = await usage_records(api, account.id)
    assert (record["status"], record["credits"]) == ("failed", 0)
    assert record["units"]["output_tokens"] > 0  # what the upstream produced is still recorded
    assert await balance(client, account) == (Decimal("10"), Decimal("0"))
    held = await services.db.fetch("SELECT status FROM holds WHERE account_id = $1", account.id)
    assert [row["status"] for row in held] == ["voided"]
    event = await services.db.fetchrow(
        "SELECT source, stage, category, action FROM moderation_events WHERE account_id = $1", account.id
    )
    assert event is not None and dict(event) == {
        "source": "chat.completion", "stage": "output", "category": "illicit", "action": "blocked"
    }  # fmt: skip


async def test_an_allowed_streamed_answer_is_served_and_charged(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account(credits="10")
    events = await _stream(client, account.headers, "a lighthouse")
    assert events[-1] == "[DONE]"
    assert not any("error" in event for event in events[:-1])
    assert events[-2]["usage"]["completion_tokens"] > 0
    [record] = await usage_records(api, account.id)
    assert record["status"] == "succeeded" and record["credits"] > 0


async def test_a_blocked_streamed_legacy_completion_ends_with_an_error_event(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account(credits="10")
    events = await _stream(client, account.headers, "glorbnik", path="completions")
    assert events[-1]["error"]["code"] == "content_policy_violation" and "[DONE]" not in events
    assert await charges(api, account.id) == []
    [record] = await usage_records(api, account.id)
    assert (record["source"], record["status"], record["credits"]) == ("text_completion", "failed", 0)
