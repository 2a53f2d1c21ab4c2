"""A task an operator fails ends its event stream like one a worker ends: its ``task.failed`` event comes through
the live events (with an id, so a client can resume after it), to streams open at the time and to late ones."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import AccountFactory
from tests.harness import wait_for
from tests.integration.events.sse import Received, read_stream
from tests.integration.helpers import submit


async def test_an_operator_failing_a_task_publishes_its_task_failed_event(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account, admin = await make_account(credits="5"), await make_account(role="admin")
    task_id = (await submit(client, account, "flux-schnell", prompt="a stuck fox")).json()["id"]  # no worker: queued
    live = Received()
    reading = asyncio.create_task(read_stream(client, account, f"/v1/tasks/{task_id}/events", received=live))

    async def opened() -> bool:
        return bool(live.events)  # the stream sent the task.queued it found

    await wait_for(opened, timeout=30, what="the stream to open")

    failed = await client.post(f"/v1/admin/tasks/{task_id}/fail", json={"reason": "hung"}, headers=admin.headers)
    assert failed.status_code == 200 and failed.json()["status"] == "failed"
    await asyncio.wait_for(reading, 30)

    assert live.ended and live.types == ["task.queued", "task.failed"], live.types
    final_id, final = live.events[-1][1], live.events[-1][2]
    # An id of its own: it came through the live events (an event told from the database has none, and an
    # EventSource keeps the previous one)
    assert final_id and final_id != live.ids[0]
    assert final["status"] == "failed" and final["task"]["error"]["code"] == "failed_by_operator"

    late = await read_stream(client, account, f"/v1/tasks/{task_id}/events")
    assert late.ended and late.types == ["task.queued", "task.failed"] and late.ids[-1] == final_id
