"""Usage records: one per model request whatever its outcome, filters, cursor pagination, the summary
(whose credits match the ledger's charges) and the streamed CSV export."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import socket
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest

from shared.accounts.keys import create_api_key
from shared.infra.ids import uuid7
from shared.services import Services
from shared.usage import record_request_usage
from tests.conftest import AccountFactory
from tests.conftest import TestAccount as Account
from tests.harness import InProcessWorker, wait_for
from tests.integration.helpers import submit, wait_terminal


async def _usage(client: httpx.AsyncClient, account: Account, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/usage", params=params, headers=account.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json(parse_float=Decimal)
    return body


async def _ledger_charges(client: httpx.AsyncClient, account: Account) -> Decimal:
    entries = (await client.get("/v1/account/ledger?limit=100", headers=account.headers)).json(parse_float=Decimal)
    return sum((Decimal(e["amount"]) for e in entries["data"] if e["type"] == "charge"), Decimal(0))


@pytest.fixture
async def finished(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services, worker: InProcessWorker
) -> dict[str, Any]:
    """An account with a succeeded, a failed and a canceled task on its first key, and a succeeded chat task on
    a second key."""
    account = await make_account(credits="20")
    async with services.db.transaction() as conn:
        second = await create_api_key(conn, account_id=account.id, name="second")
    second_account = Account(id=account.id, email=account.email, key=second.secret)
    ok = (await submit(client, account, "flux-schnell", prompt="a lighthouse")).json()
    refused = (await submit(client, account, "test-refusing", prompt="refused")).json()
    slow = (await submit(client, account, "test-slow-image", prompt="slow", width=256, height=256)).json()
    canceled = await client.post(f"/v1/tasks/{slow['id']}/cancel", headers=account.headers)
    assert canceled.status_code == 200
    chat = (
        await client.post(
            "/v1/tasks",
            json={"model": "test-per-request", "input": {"messages": [{"role": "user", "content": "hi"}]}},
            headers=second_account.headers,
        )
    ).json()
    tasks = {name: await wait_terminal(client, account, t["id"]) for name, t in
             (("ok", ok), ("refused", refused), ("canceled", slow), ("chat", chat))}  # fmt: skip
    assert [tasks[n]["status"] for n in ("ok", "refused", "canceled", "chat")] == [
        "succeeded", "failed", "canceled", "succeeded"
    ]  # fmt: skip
    first_key = await services.db.fetchval(
        "SELECT id FROM api_keys WHERE account_id = $1 AND id <> $2", account.id, second.id
    )
    return {"account": account, "tasks": tasks, "first_key": str(first_key), "second_key": str(second.id)}


async def test_every_outcome_is_recorded_and_filters_apply(client: httpx.AsyncClient, finished: dict[str, Any]) -> None:
    account, tasks = finished["account"], finished["tasks"]

    async def all_recorded() -> dict[str, Any] | None:
        body = await _usage(client, account)
        return body if len(body["data"]) == 4 else None

    body = await wait_for(all_recorded, what="four usage records")
    by_task = {r["task_id"]: r for r in body["data"]}
    ok = by_task[tasks["ok"]["id"]]
    assert ok["status"] == "succeeded" and ok["source"] == "task" and ok["model"] == "flux-schnell"
    assert ok["provider"] == "local" and ok["kind"] == "image"
    assert ok["units"] == {"images": 1, "requests": 1}
    assert ok["credits"] == Decimal(str(tasks["ok"]["credits"]["charged"])) > 0
    assert ok["api_key_id"] == finished["first_key"] and ok["api_key_prefix"] == account.key[:12]
    assert ok["latency_ms"] is not None and ok["latency_ms"] >= 0
    failed = by_task[tasks["refused"]["id"]]
    assert (failed["status"], failed["credits"], failed["units"]) == ("failed", 0, {})
    assert failed["provider"] == "local"
    canceled = by_task[tasks["canceled"]["id"]]
    assert (canceled["status"], canceled["credits"]) == ("canceled", 0)
    chat = by_task[tasks["chat"]["id"]]
    assert chat["api_key_id"] == finished["second_key"] and chat["credits"] == Decimal("0.25")
    assert [r["id"] for r in body["data"]] == sorted((r["id"] for r in body["data"]), reverse=True)  # newest first

    assert [r["task_id"] for r in (await _usage(client, account, status="failed"))["data"]] == [tasks["refused"]["id"]]
    assert len((await _usage(client, account, model="flux-schnell"))["data"]) == 1
    assert len((await _usage(client, account, key=finished["first_key"]))["data"]) == 3
    assert [r["task_id"] for r in (await _usage(client, account, key=finished["second_key"]))["data"]] == [
        tasks["chat"]["id"]
    ]
    assert (await _usage(client, account, key=finished["second_key"], status="failed"))["data"] == []
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
    an_hour_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    assert (await _usage(client, account, **{"from": tomorrow}))["data"] == []
    assert len((await _usage(client, account, **{"from": an_hour_ago, "to": tomorrow}))["data"]) == 4
    assert (await _usage(client, account, to=an_hour_ago))["data"] == []

    # Cursor pagination: every record exactly once, in order.
    seen, after = [], None
    while True:
        page = await _usage(client, account, limit=1, **({"after": after} if after else {}))
        seen += [r["id"] for r in page["data"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        after = page["next_cursor"]
    assert seen == [r["id"] for r in body["data"]]


async def test_summary_totals_match_the_ledger(client: httpx.AsyncClient, finished: dict[str, Any]) -> None:
    account, tasks = finished["account"], finished["tasks"]
    await wait_for(lambda: _count(client, account, 4), what="four usage records")
    response = await client.get("/v1/usage/summary", headers=account.headers)
    assert response.status_code == 200, response.text
    summary = response.json(parse_float=Decimal)
    charged = sum((Decimal(str(t["credits"]["charged"])) for t in tasks.values()), Decimal(0))
    assert charged > 0
    assert summary["total"]["credits"] == charged == await _ledger_charges(client, account)
    assert {k: summary["total"][k] for k in ("requests", "succeeded", "failed", "canceled")} == {
        "requests": 4, "succeeded": 2, "failed": 1, "canceled": 1
    }  # fmt: skip
    units: dict[str, Any] = {}
    for record in (await _usage(client, account))["data"]:
        for name, value in record["units"].items():
            units[name] = units.get(name, 0) + value
    assert summary["total"]["units"] == units
    assert units["images"] == 1 and units["requests"] == 2 and units["output_tokens"] > 0
    today = dt.datetime.now(dt.UTC).date().isoformat()
    days = {(d["date"], d["model"]): d for d in summary["by_day_and_model"]}
    assert set(days) == {(today, m) for m in ("flux-schnell", "test-refusing", "test-slow-image", "test-per-request")}
    assert days[(today, "test-refusing")]["failed"] == 1 and days[(today, "test-refusing")]["credits"] == 0
    assert sum((d["credits"] for d in days.values()), Decimal(0)) == charged
    keys = {k["api_key_id"]: k for k in summary["by_key"]}
    assert set(keys) == {finished["first_key"], finished["second_key"]}
    assert keys[finished["second_key"]]["credits"] == Decimal("0.25")
    assert keys[finished["second_key"]]["api_key_name"] == "second"
    assert keys[finished["first_key"]]["requests"] == 3
    assert sum((k["credits"] for k in keys.values()), Decimal(0)) == charged

    failed_only = (await client.get("/v1/usage/summary?status=failed", headers=account.headers)).json()
    assert failed_only["total"]["requests"] == 1 and failed_only["total"]["credits"] == 0
    assert failed_only["filters"]["status"] == "failed"


async def _count(client: httpx.AsyncClient, account: Account, n: int) -> bool:
    return len((await _usage(client, account))["data"]) == n


async def test_csv_export_has_the_same_records(client: httpx.AsyncClient, finished: dict[str, Any]) -> None:
    account = finished["account"]
    await wait_for(lambda: _count(client, account, 4), what="four usage records")
    listed = (await _usage(client, account))["data"]
    response = await client.get("/v1/usage/export", headers=account.headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith('attachment; filename="conduit-usage-')
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["id"] for r in rows] == [r["id"] for r in reversed(listed)]  # oldest first
    for row, record in zip(rows, reversed(listed), strict=True):
        assert row["task_id"] == record["task_id"] and row["status"] == record["status"]
        assert Decimal(row["credits"]) == record["credits"]
        assert row["api_key_prefix"] == record["api_key_prefix"]
    ok = next(r for r in rows if r["model"] == "flux-schnell")
    assert (ok["images"], ok["requests"], ok["source"]) == ("1", "1", "task")

    only_failed = await client.get("/v1/usage/export?status=failed", headers=account.headers)
    assert [r["status"] for r in csv.DictReader(io.StringIO(only_failed.text))] == ["failed"]


async def test_bad_filters_are_clear_errors(client: httpx.AsyncClient, make_account: AccountFactory) -> None:
    account = await make_account()
    for path in ("/v1/usage", "/v1/usage/summary", "/v1/usage/export"):
        for params, param in (
            ({"from": "yesterday"}, "from"),
            ({"to": "2026-13-45"}, "to"),
            ({"status": "exploded"}, "status"),
            ({"key": "cdt_not-an-id"}, "key"),
            ({"from": "2026-11-02", "to": "2026-11-01"}, "from"),
        ):
            response = await client.get(path, params=params, headers=account.headers)
            assert response.status_code == 400, (path, params, response.text)
            assert response.json()["error"]["param"] == param
    assert (await client.get("/v1/usage?after=nope", headers=account.headers)).status_code == 400
    assert (await client.get("/v1/usage")).status_code == 401


async def test_other_accounts_records_are_invisible(
    client: httpx.AsyncClient, finished: dict[str, Any], make_account: AccountFactory
) -> None:
    stranger = await make_account()
    assert (await _usage(client, stranger))["data"] == []
    assert (await _usage(client, stranger, key=finished["first_key"]))["data"] == []
    summary = (await client.get("/v1/usage/summary", headers=stranger.headers)).json()
    assert summary["total"]["requests"] == 0 and summary["by_key"] == []


async def test_synchronous_requests_are_recorded_once(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    """Chat completions and image generations (no task) record through ``record_request_usage``."""
    account = await make_account()
    request_id = uuid7()
    for _ in range(2):  # a replayed settlement records nothing twice
        async with services.db.transaction() as conn:
            await record_request_usage(
                conn,
                request_id=request_id,
                source="chat.completion",
                account_id=account.id,
                api_key_id=None,
                model="llama-3.1-8b-instruct",
                provider="local",
                kind="text",
                status="failed",
                units={},
                credits=0,
                latency_ms=12,
            )
    records = (await _usage(client, account))["data"]
    assert len(records) == 1
    assert records[0]["source"] == "chat.completion" and records[0]["request_id"] == str(request_id)
    assert records[0]["task_id"] is None and records[0]["api_key_id"] is None


async def _insert_records(services: Services, account_id: uuid.UUID, count: int) -> None:
    await services.db.execute(
        """
        INSERT INTO usage_records (id, account_id, model, provider, kind, status, units, credits, latency_ms,
                                   source, request_id, created_at)
        SELECT gen_random_uuid(), $1, 'sdxl', 'local', 'image', 'succeeded', '{"images": 1, "requests": 1}',
               1000 + n, n % 500, 'image.generation', gen_random_uuid(), now() - make_interval(secs => n)
        FROM generate_series(1, $2) AS n
        """,
        account_id,
        count,
    )


def _slow_reader(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """A client with a small, fixed TCP receive window: the server can only send as fast as it reads."""
    transport = httpx.AsyncHTTPTransport(socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)])
    return httpx.AsyncClient(base_url=str(client.base_url), timeout=60, transport=transport)


async def _open_exports(services: Services) -> int:
    """Exports holding their transaction open on the database (reading, or waiting for the client)."""
    return int(
        await services.db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%FROM usage_records u LEFT JOIN%' "
            "AND state <> 'idle' AND pid <> pg_backend_pid()"
        )
    )


async def test_a_large_export_is_streamed(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    account = await make_account()
    count = 60_000
    await _insert_records(services, account.id, count)
    expected_credits = sum(1000 + n for n in range(1, count + 1))

    async with (
        _slow_reader(client) as reader,
        reader.stream("GET", "/v1/usage/export", headers=account.headers) as response,
    ):
        assert response.status_code == 200
        assert "content-length" not in response.headers  # chunked: the size is not known up front
        chunks = response.aiter_bytes()
        received = bytearray(await anext(chunks))
        while received.count(b"\n") < 2:
            received += await anext(chunks)

        # While the client has read only the beginning, the export is still reading its cursor, waiting for the
        # client: it has not loaded the rest.
        async def cursor_open() -> bool:
            return await _open_exports(services) == 1

        await wait_for(cursor_open, timeout=10, what="the export's open cursor")
        await asyncio.sleep(0.5)
        assert await _open_exports(services) == 1
        async for chunk in chunks:
            received += chunk
    rows = list(csv.DictReader(io.StringIO(received.decode())))
    assert len(rows) == count
    assert sum(Decimal(r["credits"]) * 1_000_000 for r in rows) == expected_credits


async def test_an_abandoned_export_releases_its_connection(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    account = await make_account()
    await _insert_records(services, account.id, 60_000)

    async def started() -> bool:
        return await _open_exports(services) == 1

    async def ended() -> bool:
        return await _open_exports(services) == 0

    reader = _slow_reader(client)
    async with reader, reader.stream("GET", "/v1/usage/export", headers=account.headers) as response:
        chunks = response.aiter_bytes()
        await anext(chunks)
        await wait_for(started, timeout=10, what="the export to start")
    # leaving the block closed the connection before the body was read
    await wait_for(ended, timeout=20, what="the export's transaction to end")
