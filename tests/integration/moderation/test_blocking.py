"""The moderation step on every route that carries text (tests/fixtures/moderation.toml: "zorblax" and "glorp
bomb" are violence, blocked; "quibbleflag" is harassment, flagged; the local model's answer to "glorbnik" is
illicit, blocked, on test-chat-local whose outputs are moderated).

A blocked request answers 400 ``content_policy_violation`` naming the category (never the rule), holds nothing,
is recorded as a ``blocked`` usage record and a moderation event; a flagged one is served and recorded."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from shared.infra.db import from_json
from shared.infra.metrics.store import flush
from shared.moderation.events import strike_count
from shared.services import Services
from tests.conftest import AccountFactory
from tests.conftest import TestAccount as Account
from tests.harness import ApiServer, InProcessWorker, wait_for
from tests.integration.helpers import balance
from tests.integration.openai_helpers import async_client, charges, usage_records
from tests.integration.operating.test_operating import metric_sample


async def _holds(services: Services, account: Account) -> int:
    return int(await services.db.fetchval("SELECT count(*) FROM holds WHERE account_id = $1", account.id))


async def _events(services: Services, account: Account) -> list[dict[str, Any]]:
    rows = await services.db.fetch(
        "SELECT source, stage, category, action, checker, model, excerpt, policy_version, task_id "
        "FROM moderation_events WHERE account_id = $1 ORDER BY id",
        account.id,
    )
    return [dict(row) for row in rows]


def _refused(exc: openai.APIStatusError, category: str) -> None:
    assert exc.status_code == 400
    body = exc.body if isinstance(exc.body, dict) else {}
    assert body.get("code") == "content_policy_violation", exc.body
    assert f"category: {category}" in str(body.get("message"))
    assert "zorblax" not in str(exc.body).lower() and "glorp" not in str(exc.body).lower()  # never the rule


async def test_a_blocked_prompt_is_refused_on_every_route_before_anything_is_held(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    account = await make_account(credits="10")
    task = await client.post("/v1/tasks", headers=account.headers,
                             json={"model": "test-image-local", "input": {"prompt": "a zorblax at dawn"}})  # fmt: skip
    assert task.status_code == 400, task.text
    assert task.json()["error"]["code"] == "content_policy_violation"
    assert "category: violence" in task.json()["error"]["message"]
    messages: Any = [{"role": "system", "content": "be nice"}, {"role": "user", "content": "Tell me about ZORBLAX"}]
    async with async_client(api, account) as oai:
        with pytest.raises(openai.BadRequestError) as plain:
            await oai.chat.completions.create(model="test-chat-local", messages=messages)
        _refused(plain.value, "violence")
        with pytest.raises(openai.BadRequestError) as streamed:  # refused before the stream starts
            await oai.chat.completions.create(model="test-chat-local", messages=messages, stream=True)
        _refused(streamed.value, "violence")
        with pytest.raises(openai.BadRequestError) as legacy:
            await oai.completions.create(model="test-chat-local", prompt="how to build a glorp bomb")
        _refused(legacy.value, "violence")
        with pytest.raises(openai.BadRequestError) as image:
            await oai.images.generate(model="test-image-local", prompt="zorblax!")
        _refused(image.value, "violence")
        with pytest.raises(openai.BadRequestError) as embedding:
            await oai.embeddings.create(model="test-embed-local", input=["a fine text", "zorblax"])
        _refused(embedding.value, "violence")
    assert await _holds(services, account) == 0  # nothing was ever held
    assert await balance(client, account) == (Decimal("10"), Decimal("0"))
    assert await services.db.fetchval("SELECT count(*) FROM tasks WHERE account_id = $1", account.id) == 0
    records = await usage_records(api, account.id)
    assert [(r["source"], r["status"], r["credits"]) for r in records] == [
        ("task", "blocked", 0),
        ("chat.completion", "blocked", 0),
        ("chat.completion", "blocked", 0),
        ("text_completion", "blocked", 0),
        ("image.generation", "blocked", 0),
        ("embedding", "blocked", 0),
    ]
    categories = await services.db.fetch(
        "SELECT DISTINCT moderation_category FROM usage_records WHERE account_id = $1", account.id
    )
    assert [row["moderation_category"] for row in categories] == ["violence"]
    listed = await client.get("/v1/usage", headers=account.headers, params={"status": "blocked"})
    assert {item["moderation_category"] for item in listed.json()["data"]} == {"violence"}
    assert len(listed.json()["data"]) == 6
    summary = (await client.get("/v1/usage/summary", headers=account.headers)).json()["total"]
    assert (summary["requests"], summary["blocked"], summary["blocked_by_category"]) == (6, 6, {"violence": 6})
    events = await _events(services, account)
    assert [(e["source"], e["category"], e["action"], e["checker"]) for e in events] == [
        (r["source"], "violence", "blocked", "rules") for r in records
    ]
    assert events[1]["excerpt"] == "Tell me about ZORBLAX"  # the text that matched, as evidence
    assert events[0]["policy_version"] == 7


@pytest.mark.parametrize(
    "prompt",
    [
        "ZoRbLaX",  # case
        "zor\u200bbl\u200dax",  # zero-width characters
        "z\u043erbl\u0430x",  # Cyrillic o and a
        "\uff5a\uff4f\uff52\uff42\uff4c\uff41\uff58",  # full-width letters
        "z o r b l a x",  # spaced out
        "z.o.r.b.l.a.x",
        "z0rbl4x",  # digits for letters
        "GLORP-B0MB",
        "zórbláx",  # accents
    ],
)
async def test_evasions_are_still_blocked(
    api: ApiServer, make_account: AccountFactory, services: Services, prompt: str
) -> None:
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        with pytest.raises(openai.BadRequestError) as refused:
            await oai.chat.completions.create(model="test-chat-local", messages=[{"role": "user", "content": prompt}])
    _refused(refused.value, "violence")
    assert await _holds(services, account) == 0


async def test_words_inside_other_words_are_not_matched(api: ApiServer, make_account: AccountFactory) -> None:
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        answer = await oai.chat.completions.create(
            model="test-chat-local", messages=[{"role": "user", "content": "the zorblaxian glorpbombs"}]
        )
    assert answer.choices[0].message.content


async def test_a_flagged_request_is_served_and_recorded(
    api: ApiServer, make_account: AccountFactory, services: Services
) -> None:
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        answer = await oai.chat.completions.create(
            model="test-chat-local", messages=[{"role": "user", "content": "you QUIBBLEFLAG, mail me at a@b.co"}]
        )
    assert answer.choices[0].message.content

    async def both() -> list[dict[str, Any]]:  # the prompt's flag, and the answer's (it repeats the prompt)
        events = await _events(services, account)
        return events if len(events) == 2 else []

    events = {event["stage"]: event for event in await wait_for(both, what="the flags' events")}
    event = events["input"]
    assert (event["category"], event["action"], event["source"]) == ("harassment", "flagged", "chat.completion")
    assert event["excerpt"] == "you QUIBBLEFLAG, mail me at [email]"  # redacted
    assert (events["output"]["category"], events["output"]["action"]) == ("harassment", "flagged")
    [record] = await usage_records(api, account.id)
    assert record["status"] == "succeeded" and record["credits"] > 0


async def test_a_blocked_chat_output_is_not_returned_nor_charged(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        with pytest.raises(openai.BadRequestError) as refused:
            await oai.chat.completions.create(
                model="test-chat-local", messages=[{"role": "user", "content": "glorbnik"}]
            )
    assert refused.value.code == "content_policy_violation"
    assert "generated output" in refused.value.message and "category: illicit" in refused.value.message
    assert await charges(api, account.id) == []
    [record] = await usage_records(api, account.id)
    assert (record["status"], record["credits"]) == ("failed", 0)
    assert record["units"]["output_tokens"] > 0  # what the upstream produced is still recorded
    assert await balance(client, account) == (Decimal("10"), Decimal("0"))
    [event] = await _events(services, account)
    assert (event["stage"], event["category"], event["action"]) == ("output", "illicit", "blocked")
    assert await strike_count(services.db, account.id, 3600) == 0  # the model's doing, not the user's


async def test_a_blocked_task_output_fails_the_task_and_voids_its_hold(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services, worker: InProcessWorker
) -> None:
    account = await make_account(credits="10")
    submitted = await client.post("/v1/tasks", headers=account.headers, json={
        "model": "test-chat-local", "input": {"messages": [{"role": "user", "content": "glorbnik"}]},
    })  # fmt: skip
    assert submitted.status_code == 202, submitted.text
    task_id = submitted.json()["id"]

    async def finished() -> dict[str, Any] | None:
        task = (await client.get(f"/v1/tasks/{task_id}", headers=account.headers)).json()
        return task if task["status"] in ("succeeded", "failed") else None

    task = await wait_for(finished, what="the task to end")
    assert task["status"] == "failed", task
    assert task["error"]["code"] == "content_policy_violation"
    assert not task.get("outputs")
    assert await balance(client, account) == (Decimal("10"), Decimal("0"))
    status = await services.db.fetchval("SELECT status FROM holds WHERE task_id = $1", uuid.UUID(task_id))
    assert status == "voided"
    record = await services.db.fetchrow("SELECT status, credits, units FROM usage_records WHERE task_id = $1",
                                        uuid.UUID(task_id))  # fmt: skip
    assert record is not None and (record["status"], record["credits"]) == ("failed", 0)
    assert from_json(record["units"])["output_tokens"] > 0  # the operator's upstream cost is kept
    [event] = await _events(services, account)
    assert (event["stage"], event["category"], str(event["task_id"])) == ("output", "illicit", task_id)


async def test_metrics_count_blocks_and_flags_by_category(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    blocked = {"source": "embedding", "stage": "input", "category": "violence", "action": "blocked"}
    flagged = {"source": "embedding", "stage": "input", "category": "harassment", "action": "flagged"}

    async def samples() -> tuple[float, float]:
        await flush(services.redis)
        text = (await client.get("/metrics")).text
        name = "conduit_moderation_decisions_total"
        return metric_sample(text, name, **blocked), metric_sample(text, name, **flagged)

    before = await samples()
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        with pytest.raises(openai.BadRequestError):
            await oai.embeddings.create(model="test-embed-local", input=["zorblax", "quibbleflag"])
    assert await samples() == (before[0] + 1, before[1] + 1)  # the block's event and the flag that came with it
