"""GET /v1/tasks/{id}/events and GET /v1/events: every event in order over real HTTP, resume by Last-Event-ID, late
connects, heartbeats, and streams that complete themselves from the database when Redis lost their events."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from shared.services import Services
from shared.tasks import lifecycle
from tests.conftest import AccountFactory
from tests.harness import ApiServer, InProcessWorker, wait_for
from tests.integration.events.sse import Received, read_stream
from tests.integration.helpers import submit, wait_terminal

VIDEO = {"prompt": "a ball bouncing", "duration_s": 2, "fps": 8, "width": 256, "height": 256}


async def test_a_video_task_streams_every_event_in_order_then_the_stream_ends(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker
) -> None:
    account = await make_account(credits="30")
    task_id = (await submit(client, account, "ltx-video", **VIDEO)).json()["id"]
    received = await read_stream(client, account, f"/v1/tasks/{task_id}/events")

    assert received.ended
    types = received.types
    assert types[:2] == ["task.queued", "task.started"], types
    assert types[-2:] == ["task.output", "task.succeeded"], types
    progress = [data["progress"] for kind, _, data in received.events if kind == "task.progress"]
    # the local provider reports its frames: 2 s at 8 fps, in order, ending with the last one
    assert progress and progress[-1] == {"step": 16, "total_steps": 16, "unit": "frame", "percent": 100.0}
    steps = [report["step"] for report in progress]
    assert steps == sorted(steps) and all(report["total_steps"] == 16 for report in progress)
    assert set(types[2:-2]) == {"task.progress"}
    # ids are increasing stream ids; every event names its task and the status it leaves the task in
    assert all(data["task_id"] == task_id and data["object"] == "task.event" for _, _, data in received.events)
    assert [data["status"] for _, _, data in received.events][:2] == ["queued", "running"]
    output = received.events[-2][2]["output"]
    assert output["type"] == "video" and output["url"].startswith("http")
    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.get(output["url"])).status_code == 200
    final = received.events[-1][2]
    assert final["status"] == "succeeded" and final["task"]["credits"] == {"held": 8, "charged": 8}
    assert final["task"]["outputs"][0]["type"] == "video"

    # Resuming after the start replays exactly what came after it, with the same ids.
    started_id = received.ids[1]
    resumed = await read_stream(client, account, f"/v1/tasks/{task_id}/events", last_event_id=started_id)
    assert resumed.ended and resumed.ids == received.ids[2:]
    assert resumed.types == types[2:]

    # Resuming after the last event: nothing left to tell but the end, which the client saw: the stream says
    # it once more from the task row and closes at once.
    late = await read_stream(client, account, f"/v1/tasks/{task_id}/events", last_event_id=received.ids[-1], timeout=10)
    assert late.ended and late.types == ["task.succeeded"] and late.ids == [""]


async def test_a_client_connecting_after_the_end_gets_the_final_event_at_once(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker
) -> None:
    account = await make_account(credits="5")
    task_id = (await submit(client, account, "flux-schnell", prompt="late", width=256, height=256)).json()["id"]
    await wait_terminal(client, account, task_id)
    received = await read_stream(client, account, f"/v1/tasks/{task_id}/events", timeout=10)
    assert received.ended and received.types[-1] == "task.succeeded"
    assert received.types[0] == "task.queued"


async def test_a_stream_whose_events_redis_lost_completes_from_the_database(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    """No worker: the task waits queued. Redis is flushed mid-stream and the task ends without any event
    published (as when Redis was down): the stream still tells the end, from the task row, and closes."""
    account = await make_account(credits="5")
    task_id = (await submit(client, account, "flux-schnell", prompt="lost", width=256, height=256)).json()["id"]
    received = Received()
    reading = asyncio.create_task(read_stream(client, account, f"/v1/tasks/{task_id}/events", received=received))
    await wait_for(lambda: _truthy(received.events), timeout=30, what="the first event")
    assert received.types == ["task.queued"]
    await services.redis.flushdb()
    await lifecycle.cancel(services.db, account.id, uuid.UUID(task_id))  # no events published
    await asyncio.wait_for(reading, 30)
    assert received.ended and received.types == ["task.queued", "task.canceled"]
    assert received.events[-1][2]["task"]["status"] == "canceled"

    # A new connection finds no events in Redis at all: the task row tells the end at once.
    again = await read_stream(client, account, f"/v1/tasks/{task_id}/events", timeout=10)
    assert again.ended and again.types == ["task.canceled"]


async def test_an_idle_stream_sends_heartbeat_comments_and_cancel_ends_it(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account(credits="5")
    task_id = (await submit(client, account, "flux-schnell", prompt="idle", width=256, height=256)).json()["id"]
    lines: list[str] = []

    async def read() -> None:
        async with client.stream("GET", f"/v1/tasks/{task_id}/events", headers=account.headers) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                lines.append(line)

    reading = asyncio.create_task(read())
    # EVENTS_HEARTBEAT_S is 1 s in tests
    await wait_for(lambda: _truthy(": keep-alive" in lines or reading.done()), timeout=30, what="a heartbeat")
    assert not reading.done() and "event: task.queued" in lines
    canceled = await client.post(f"/v1/tasks/{task_id}/cancel", headers=account.headers)
    assert canceled.status_code == 200
    await asyncio.wait_for(reading, 30)
    assert "event: task.canceled" in lines


async def test_account_stream_of_some_tasks_with_a_status_filter(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker
) -> None:
    account = await make_account(credits="10")
    first = (await submit(client, account, "flux-schnell", prompt="one", width=256, height=256)).json()["id"]
    second = (await submit(client, account, "test-refusing", prompt="two")).json()["id"]
    both = await read_stream(client, account, f"/v1/events?task_ids={first},{second}")
    assert both.ended
    ends = {(data["task_id"], kind) for kind, _, data in both.events if kind in ("task.succeeded", "task.failed")}
    assert ends == {(first, "task.succeeded"), (second, "task.failed")}
    assert {data["task_id"] for _, _, data in both.events} == {first, second}
    ended = await read_stream(client, account, f"/v1/events?task_ids={first},{second}&status=succeeded,failed")
    assert ended.ended and sorted(ended.types) == ["task.failed", "task.succeeded"]
    # resuming the account's stream after its third event: the rest, from the account's kept events
    resumed = await read_stream(client, account, f"/v1/events?task_ids={first},{second}", last_event_id=both.ids[2])
    assert resumed.ended and resumed.ids == both.ids[3:]


async def test_account_stream_tells_new_tasks_live(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker, api: ApiServer
) -> None:
    account = await make_account(credits="10")
    received = Received()
    reading = asyncio.create_task(
        read_stream(client, account, "/v1/events?status=succeeded", received=received, until=1)
    )
    hub = api.services.event_hub
    await wait_for(lambda: _truthy(hub.watches_account(account.id)), timeout=30, what="the stream to open")
    task_id = (await submit(client, account, "flux-schnell", prompt="live", width=256, height=256)).json()["id"]
    await asyncio.wait_for(reading, 30)
    assert received.types == ["task.succeeded"] and received.events[0][2]["task_id"] == task_id


async def test_an_api_process_with_no_stream_open_reads_no_events_until_one_opens(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker, api: ApiServer
) -> None:
    account = await make_account(credits="10")
    hub = api.services.event_hub
    # An earlier test's streams are closed; the reader stops once its read under way ends.
    await wait_for(lambda: _truthy(not hub.tailing), timeout=30, what="the events reader to rest")
    before = hub.received
    quiet = (await submit(client, account, "flux-schnell", prompt="nobody", width=256, height=256)).json()["id"]
    assert (await wait_terminal(client, account, quiet))["status"] == "succeeded"
    assert hub.received == before  # its events were published; nobody here streams, so none was read

    received = await read_stream(client, account, f"/v1/tasks/{quiet}/events")  # its history, from Redis
    assert received.ended and received.types[:2] == ["task.queued", "task.started"]
    assert received.types[-1] == "task.succeeded"
    live = Received()
    reading = asyncio.create_task(read_stream(client, account, "/v1/events?status=succeeded", received=live, until=1))
    await wait_for(lambda: _truthy(hub.watches_account(account.id)), timeout=30, what="the stream to open")
    task_id = (await submit(client, account, "flux-schnell", prompt="watched", width=256, height=256)).json()["id"]
    await asyncio.wait_for(reading, 30)
    assert live.types == ["task.succeeded"] and live.events[0][2]["task_id"] == task_id
    assert hub.received > before  # read while the stream was open


async def test_another_accounts_task_and_bad_input_are_refused(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    owner, stranger = await make_account(credits="5"), await make_account(credits="5")
    task_id = (await submit(client, owner, "flux-schnell", prompt="mine", width=256, height=256)).json()["id"]
    for path in (f"/v1/tasks/{task_id}/events", f"/v1/events?task_ids={task_id}", "/v1/tasks/nope/events"):
        response = await client.get(path, headers=stranger.headers)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "task_not_found"
    bad_id = await client.get(f"/v1/tasks/{task_id}/events", headers={**owner.headers, "Last-Event-ID": "x"})
    assert bad_id.status_code == 400 and bad_id.json()["error"]["param"] == "Last-Event-ID"
    bad_status = await client.get("/v1/events?status=done", headers=owner.headers)
    assert bad_status.status_code == 400 and bad_status.json()["error"]["param"] == "status"
    anonymous = await client.get(f"/v1/tasks/{task_id}/events")
    assert anonymous.status_code == 401
    await client.post(f"/v1/tasks/{task_id}/cancel", headers=owner.headers)


async def _truthy(value: object) -> object:
    return value or None
