"""End to end: a worker runs the task, the outbox hands the event to the worker's delivery job, the receiver
verifies it with the reference ``standardwebhooks`` package; and the outcomes a receiver can produce."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from shared.services import Services
from shared.webhooks.delivery import deliver
from tests.conftest import AccountFactory
from tests.harness import InProcessWorker, wait_for
from tests.integration.helpers import wait_terminal
from tests.integration.webhooks.conftest import PendingDelivery, RuntimeFactory
from tests.integration.webhooks.flows import (
    account_secret,
    canceled_task,
    create_endpoint,
    delivery,
    delivery_ids,
    only_delivery,
    submit,
)
from tests.integration.webhooks.receiver import Receiver, Reply

DESTINATIONS = "SELECT url, endpoint_id FROM webhook_deliveries WHERE task_id = $1"


def without_url_query(task: dict[str, Any]) -> dict[str, Any]:
    """The task with its output URLs cut before the query (the signature's expiry moves on the hour)."""
    outputs = [{**o, "url": o["url"].split("?")[0] if o.get("url") else o.get("url")} for o in task["outputs"]]
    return {**task, "outputs": outputs}


async def delivered(client: httpx.AsyncClient, account: Any, delivery_id: uuid.UUID) -> dict[str, Any] | None:
    shown = await delivery(client, account, delivery_id)
    return shown if shown["status"] != "pending" else None


async def test_a_tasks_webhook_url_gets_the_terminal_event_signed_on_the_first_try(
    lclient: httpx.AsyncClient,
    make_account: AccountFactory,
    services: Services,
    receiver: Receiver,
    wh_worker: InProcessWorker,
) -> None:
    account = await make_account()
    task = await submit(lclient, account, webhook_url=receiver.url("/hooks/conduit?source=test"))
    done = await wait_terminal(lclient, account, task["id"])
    assert done["status"] == "succeeded"
    [request] = await receiver.wait_requests(1)

    payload = request.verify(await account_secret(lclient, account))  # the reference implementation
    assert request.path == "/hooks/conduit"
    assert request.headers["content-type"] == "application/json"
    assert payload["type"] == "task.succeeded"
    assert payload["id"] == request.webhook_id
    assert without_url_query(payload["data"]) == without_url_query(done)  # the task as GET shows it
    signed = urlsplit(payload["data"]["outputs"][0]["url"])  # a signed URL that works (any web process serves it)
    file = await lclient.get(f"{signed.path}?{signed.query}")
    assert file.status_code == 200
    assert file.headers["content-type"] == "image/png"

    delivery_id = await only_delivery(services, task["id"])
    shown = await wait_for(lambda: delivered(lclient, account, delivery_id), what="the delivery to be logged")
    assert shown["status"] == "delivered"
    assert shown["event_id"] == request.webhook_id
    assert shown["event_type"] == "task.succeeded"
    assert shown["endpoint_id"] is None
    [attempt] = shown["attempts"]
    assert attempt["status_code"] == 200
    assert attempt["error"] is None
    assert attempt["latency_ms"] >= 0

    on_task = await lclient.get(f"/v1/tasks/{task['id']}/webhooks", headers=account.headers)
    assert on_task.status_code == 200
    assert [d["id"] for d in on_task.json()["data"]] == [str(delivery_id)]


async def test_an_endpoint_gets_the_events_its_filter_lists(
    lclient: httpx.AsyncClient,
    make_account: AccountFactory,
    services: Services,
    receiver: Receiver,
    wh_worker: InProcessWorker,
) -> None:
    account = await make_account()
    endpoint = await create_endpoint(lclient, account, receiver.url(), events=["task.started", "task.succeeded"])
    assert endpoint["events"] == ["task.started", "task.succeeded"]
    ok = await submit(lclient, account)
    refused = await submit(lclient, account, model="test-refusing")
    assert (await wait_terminal(lclient, account, ok["id"]))["status"] == "succeeded"
    assert (await wait_terminal(lclient, account, refused["id"]))["status"] == "failed"
    requests = await receiver.wait_requests(3)
    events = sorted(
        (r.verify(endpoint["secret"])["data"]["id"], r.verify(endpoint["secret"])["type"]) for r in requests
    )
    assert events == sorted([(ok["id"], "task.started"), (ok["id"], "task.succeeded"), (refused["id"], "task.started")])
    started = next(
        r.verify(endpoint["secret"]) for r in requests if r.verify(endpoint["secret"])["type"] == "task.started"
    )
    assert started["data"]["status"] == "running"  # the task as it was when the event happened
    assert len({r.webhook_id for r in requests}) == 3
    # task.failed is not in the filter: no event, no delivery
    assert (
        await services.db.fetchval(
            "SELECT count(*) FROM webhook_events WHERE task_id = $1 AND type = 'task.failed'", uuid.UUID(refused["id"])
        )
        == 0
    )


async def test_a_task_url_and_an_endpoint_both_get_the_event_but_the_same_url_only_once(
    lclient: httpx.AsyncClient, make_account: AccountFactory, services: Services, receiver: Receiver
) -> None:
    account = await make_account()
    await create_endpoint(lclient, account, receiver.url("/endpoint"))
    both = await canceled_task(lclient, account, webhook_url=receiver.url("/task"))
    rows = await services.db.fetch(
        "SELECT url, endpoint_id FROM webhook_deliveries WHERE task_id = $1", uuid.UUID(both)
    )
    assert sorted(r["url"] for r in rows) == [receiver.url("/endpoint"), receiver.url("/task")]
    same = await canceled_task(lclient, account, webhook_url=receiver.url("/endpoint"))
    rows = await services.db.fetch(
        "SELECT url, endpoint_id FROM webhook_deliveries WHERE task_id = $1", uuid.UUID(same)
    )
    assert [(r["url"], r["endpoint_id"] is not None) for r in rows] == [(receiver.url("/endpoint"), True)]
    # and a task with no destination creates no event at all
    other = await make_account()
    none = await canceled_task(lclient, other)
    assert await services.db.fetchval("SELECT count(*) FROM webhook_events WHERE task_id = $1", uuid.UUID(none)) == 0


async def test_410_gone_disables_the_endpoint(
    lclient: httpx.AsyncClient,
    make_account: AccountFactory,
    services: Services,
    receiver: Receiver,
    make_runtime: RuntimeFactory,
) -> None:
    account = await make_account()
    endpoint = await create_endpoint(lclient, account, receiver.url())
    first, second = [await only_delivery(services, await canceled_task(lclient, account)) for _ in range(2)]
    receiver.reply(Reply(410, body=b"this hook was removed"))
    rt = make_runtime()
    outcome = await deliver(rt, first)
    assert outcome.next_attempt_at is None  # no retry after 410
    shown = await delivery(lclient, account, first)
    assert shown["status"] == "failed"
    assert shown["last_status_code"] == 410
    ep = (await lclient.get(f"/v1/webhooks/endpoints/{endpoint['id']}", headers=account.headers)).json()
    assert (ep["enabled"], ep["status"], ep["disabled_reason"]) == (False, "disabled", "gone")
    assert ep["disabled_at"] is not None

    await deliver(rt, second)  # already pending for the endpoint: fails without a request
    assert len(receiver.requests) == 1
    assert (await delivery(lclient, account, second))["last_error"] == "not sent: the endpoint is disabled"
    later = await canceled_task(lclient, account)  # new events skip the disabled endpoint
    assert await delivery_ids(services, later) == []


async def test_410_on_a_task_url_stops_its_retries(
    lclient: httpx.AsyncClient,
    pending: PendingDelivery,
    receiver: Receiver,
    make_runtime: RuntimeFactory,
) -> None:
    account, delivery_id = pending.account, pending.id
    receiver.reply(Reply(410))
    assert (await deliver(make_runtime(), delivery_id)).next_attempt_at is None
    assert (await delivery(lclient, account, delivery_id))["status"] == "failed"


async def test_a_receiver_that_hangs_times_out_and_is_retried(
    lclient: httpx.AsyncClient,
    pending: PendingDelivery,
    receiver: Receiver,
    make_runtime: RuntimeFactory,
) -> None:
    account, delivery_id = pending.account, pending.id
    receiver.reply(Reply(hang=True))
    outcome = await deliver(make_runtime(timeout_s=1), delivery_id)
    assert outcome.next_attempt_at is not None
    shown = await delivery(lclient, account, delivery_id)
    [attempt] = shown["attempts"]
    assert attempt["error"] == "timed out after 1 s"
    assert attempt["status_code"] is None
    assert 900 <= attempt["latency_ms"] < 5000
    assert shown["status"] == "pending"


async def test_a_response_that_never_ends_is_cut_by_the_time_limit(
    lclient: httpx.AsyncClient,
    make_account: AccountFactory,
    services: Services,
    make_runtime: RuntimeFactory,
) -> None:
    """The headers arrive at once but the body drips forever: the whole request is capped, not each read."""

    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
        try:
            for _ in range(100):
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.1)
        except ConnectionError:
            pass
        writer.close()

    server = await asyncio.start_server(drip, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        account = await make_account()
        url = f"http://127.0.0.1:{port}/drip"
        delivery_id = await only_delivery(services, await canceled_task(lclient, account, webhook_url=url))
        outcome = await deliver(make_runtime(timeout_s=1), delivery_id)
        assert outcome.next_attempt_at is not None
        [attempt] = (await delivery(lclient, account, delivery_id))["attempts"]
        assert attempt["error"] == "timed out after 1 s"
        assert attempt["latency_ms"] < 5000
    finally:
        server.close()


async def test_redirects_are_not_followed(
    lclient: httpx.AsyncClient,
    pending: PendingDelivery,
    receiver: Receiver,
    make_runtime: RuntimeFactory,
) -> None:
    account, delivery_id = pending.account, pending.id
    receiver.reply(Reply(307, headers={"Location": receiver.url("/elsewhere")}))
    outcome = await deliver(make_runtime(), delivery_id)
    assert outcome.next_attempt_at is not None  # a failed attempt, retried on the schedule
    assert [r.path for r in receiver.requests] == ["/hook"]  # nobody went to /elsewhere
    [attempt] = (await delivery(lclient, account, delivery_id))["attempts"]
    assert attempt["status_code"] == 307
    assert attempt["error"] == f"HTTP 307: redirect not followed (Location: {receiver.url('/elsewhere')})"


async def test_a_large_response_is_read_only_up_to_the_cap(
    lclient: httpx.AsyncClient,
    pending: PendingDelivery,
    receiver: Receiver,
    make_runtime: RuntimeFactory,
) -> None:
    account, delivery_id = pending.account, pending.id
    receiver.reply(Reply(200, body=b"y" * (5 * 1024 * 1024)))
    await deliver(make_runtime(), delivery_id)
    shown = await delivery(lclient, account, delivery_id)
    assert shown["status"] == "delivered"
    assert shown["attempts"][0]["response_body"] == "y" * 1024  # the log keeps a short excerpt


@pytest.mark.parametrize("code", [301, 400, 404, 500])
async def test_non_2xx_answers_are_failed_attempts(
    code: int,
    lclient: httpx.AsyncClient,
    pending: PendingDelivery,
    receiver: Receiver,
    make_runtime: RuntimeFactory,
) -> None:
    account, delivery_id = pending.account, pending.id
    receiver.reply(Reply(code))
    outcome = await deliver(make_runtime(), delivery_id)
    assert outcome.next_attempt_at is not None
    shown = await delivery(lclient, account, delivery_id)
    assert (shown["status"], shown["last_status_code"]) == ("pending", code)


async def test_any_2xx_is_success(
    lclient: httpx.AsyncClient,
    pending: PendingDelivery,
    receiver: Receiver,
    make_runtime: RuntimeFactory,
) -> None:
    account, delivery_id = pending.account, pending.id
    receiver.reply(Reply(204, body=b""))
    await deliver(make_runtime(), delivery_id)
    assert (await delivery(lclient, account, delivery_id))["status"] == "delivered"


async def test_an_edited_endpoint_url_is_used_for_pending_deliveries(
    lclient: httpx.AsyncClient,
    make_account: AccountFactory,
    services: Services,
    receiver: Receiver,
    make_runtime: RuntimeFactory,
) -> None:
    account = await make_account()
    endpoint = await create_endpoint(lclient, account, receiver.url("/old"))
    delivery_id = await only_delivery(services, await canceled_task(lclient, account))
    response = await lclient.patch(
        f"/v1/webhooks/endpoints/{endpoint['id']}", json={"url": receiver.url("/new")}, headers=account.headers
    )
    assert response.status_code == 200, response.text
    await deliver(make_runtime(), delivery_id)
    assert [urlsplit(r.path).path for r in receiver.requests] == ["/new"]
    assert (await delivery(lclient, account, delivery_id))["url"] == receiver.url("/new")


async def test_an_event_that_cannot_be_rendered_costs_an_attempt_instead_of_looping(
    lclient: httpx.AsyncClient,
    pending: PendingDelivery,
    services: Services,
    receiver: Receiver,
    make_runtime: RuntimeFactory,
) -> None:
    await services.db.execute(
        'UPDATE webhook_events SET data = data || \'{"created_at": "not a time"}\' WHERE task_id = $1',
        uuid.UUID(pending.task_id),
    )
    outcome = await deliver(make_runtime(), pending.id)
    assert outcome.next_attempt_at is not None
    assert receiver.requests == []
    [attempt] = (await delivery(lclient, pending.account, pending.id))["attempts"]
    assert attempt["error"] == "internal error while preparing the message; it has been logged"
