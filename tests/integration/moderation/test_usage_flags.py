"""Moderation on usage records (tests/fixtures/moderation.toml: "quibbleflag" is harassment, flagged; "zorblax"
violence, blocked): a request served though flagged carries its categories on its usage record, in the list, the
CSV export (``moderation_category``) and the summary (``flagged_by_category``), like a blocked one."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx

from shared.services import Services
from tests.conftest import AccountFactory
from tests.conftest import TestAccount as Account
from tests.harness import ApiServer, InProcessWorker, wait_for
from tests.integration.openai_helpers import async_client


async def _records(client: httpx.AsyncClient, account: Account) -> list[dict[str, Any]]:
    response = await client.get("/v1/usage", headers=account.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def test_flagged_and_blocked_requests_show_their_categories_in_usage(
    api: ApiServer,
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    services: Services,
    worker: InProcessWorker,
) -> None:
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        flagged_chat = await oai.chat.completions.create(
            model="test-chat-local", messages=[{"role": "user", "content": "you quibbleflag"}]
        )
        await oai.embeddings.create(model="test-embed-local", input=["quibbleflag again"])
        await oai.chat.completions.create(model="test-chat-local", messages=[{"role": "user", "content": "hello"}])
    assert flagged_chat.choices[0].message.content
    zorblax = {"model": "test-chat-local", "messages": [{"role": "user", "content": "zorblax"}]}
    blocked = await client.post("/v1/chat/completions", headers=account.headers, json=zorblax)
    assert blocked.status_code == 400
    task = await client.post("/v1/tasks", headers=account.headers, json={
        "model": "test-chat-local", "input": {"messages": [{"role": "user", "content": "a quibbleflag task"}]},
    })  # fmt: skip
    assert task.status_code == 202, task.text

    async def all_recorded() -> list[dict[str, Any]] | None:
        records = await _records(client, account)
        flags = await services.db.fetchval(
            "SELECT count(*) FROM moderation_events WHERE account_id = $1 AND action = 'flagged'", account.id
        )
        return records if len(records) == 5 and flags >= 5 else None

    records = await wait_for(all_recorded, what="five usage records and their flags")
    categories = sorted((r["source"], r["status"], str(r["moderation_category"])) for r in records)
    assert categories == [
        ("chat.completion", "blocked", "violence"),
        ("chat.completion", "succeeded", "None"),  # nothing flagged
        ("chat.completion", "succeeded", "harassment"),  # the prompt's flag (and the answer's, which repeats it)
        ("embedding", "succeeded", "harassment"),
        ("task", "succeeded", "harassment"),
    ]

    export = await client.get("/v1/usage/export", headers=account.headers)
    assert export.status_code == 200
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert "moderation_category" in rows[0]
    assert sorted(row["moderation_category"] for row in rows) == ["", "harassment", "harassment", "harassment",
                                                                   "violence"]  # fmt: skip
    assert {r["id"]: r["moderation_category"] for r in rows} == {
        r["id"]: r["moderation_category"] or "" for r in records
    }

    summary = await client.get("/v1/usage/summary", headers=account.headers)
    assert summary.status_code == 200, summary.text
    total = summary.json()["total"]
    assert total["blocked_by_category"] == {"violence": 1}
    assert total["flagged_by_category"] == {"harassment": 3}
