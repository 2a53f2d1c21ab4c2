"""The delivery log (listing, filters, manual retry) and recovery: lost jobs and a worker killed mid-delivery."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import httpx

from shared.services import Services
from shared.webhooks.delivery import deliver
from shared.webhooks.dispatch import purge_logs, requeue_due
from tests.conftest import AccountFactory
from tests.harness import InProcessWorker, Subprocess, free_port, wait_for
from tests.integration.helpers import wait_terminal
from tests.integration.webhooks.conftest import PendingDelivery, RuntimeFactory
from tests.integration.webhooks.flows import (
    account_secret,
    canceled_task,
    create_endpoint,
    delivery,
    only_delivery,
    submit,
)
from tests.integration.webhooks.receiver import Receiver, Reply


async def test_deliveries_are_listed_newest_first_with_filters_and_a_cursor(
    lclient: httpx.AsyncClient,
    make_account: AccountFactory,
    services: Services,
    receiver: Receiver,
    make_runtime: RuntimeFactory,
) -> None:
    account = await make_account()
    endpoint = await create_endpoint(lclient, account, receiver.url("/endpoint"))
    tasks = [await canceled_task(lclient, account, webhook_url=receiver.url("/task")) for _ in range(3)]
    ids = [d for t in tasks for d in sorted(await _ids(services, t))]
    assert len(ids) == 6
    receiver.reply(Reply(500))
    await deliver(make_runtime(), ids[0])

    seen: list[str] = []
    after = None
    while True:
        params = {"limit": 4, **({"after": after} if after else {})}
        page = (await lclient.get("/v1/webhooks/deliveries", params=params, headers=account.headers)).json()
        seen += [d["id"] for d in page["data"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        after = page["next_cursor"]
    assert seen == [str(i) for i in sorted(ids, reverse=True)]

    async def listed(**params: str) -> list[str]:
        response = await lclient.get("/v1/webhooks/deliveries", params=params, headers=account.headers)
        assert response.status_code == 200, response.text
        return [d["id"] for d in response.json()["data"]]

    assert len(await listed(endpoint_id=endpoint["id"])) == 3
    assert await listed(task_id=tasks[1]) == [str(i) for i in sorted(await _ids(services, tasks[1]), reverse=True)]
    assert len(await listed(status="pending")) == 6
    assert len(await listed(event_type="task.canceled")) == 6
    assert await listed(event_type="task.started") == []
    failed_once = (await lclient.get(f"/v1/webhooks/deliveries/{ids[0]}", headers=account.headers)).json()
    assert failed_once["attempts"][0]["status_code"] == 500
    for bad in ({"status": "lost"}, {"event_type": "task.exploded"}, {"task_id": "nope"}, {"after": "nope"}):
        response = await lclient.get("/v1/webhooks/deliveries", params=bad, headers=account.headers)
        assert response.status_code == 400, response.text

    other = await make_account()
    assert (await lclient.get("/v1/webhooks/deliveries", headers=other.headers)).json()["data"] == []
    hidden = await lclient.get(f"/v1/webhooks/deliveries/{ids[0]}", headers=other.headers)
    assert hidden.status_code == 404
    assert (await lclient.post(f"/v1/webhooks/deliveries/{ids[0]}/retry", headers=other.headers)).status_code == 404
    assert (await lclient.get(f"/v1/tasks/{tasks[0]}/webhooks", headers=other.headers)).status_code == 404


async def _ids(services: Services, task_id: str) -> list[uuid.UUID]:
    rows = await services.db.fetch("SELECT id FROM webhook_deliveries WHERE task_id = $1", uuid.UUID(task_id))
    return [row["id"] for row in rows]


async def test_a_manual_retry_redelivers_with_the_same_webhook_id(
    lclient: httpx.AsyncClient,
    make_account: AccountFactory,
    services: Services,
    receiver: Receiver,
    wh_worker: InProcessWorker,
) -> None:
    account = await make_account()
    task = await submit(lclient, account, webhook_url=receiver.url())
    await wait_terminal(lclient, account, task["id"])
    [first] = await receiver.wait_requests(1)
    delivery_id = await only_delivery(services, task["id"])
    await wait_for(lambda: _status_is(lclient, account, delivery_id, "delivered"), what="the first delivery")

    response = await lclient.post(f"/v1/webhooks/deliveries/{delivery_id}/retry", headers=account.headers)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending"
    _, second = await receiver.wait_requests(2)
    assert second.webhook_id == first.webhook_id
    second.verify(await account_secret(lclient, account))
    shown = await wait_for(lambda: _status_is(lclient, account, delivery_id, "delivered"), what="the redelivery")
    assert [a["attempt"] for a in shown["attempts"]] == [1, 2]
    assert shown["attempt_count"] == 2


async def _status_is(client: httpx.AsyncClient, account: object, delivery_id: uuid.UUID, status: str) -> object:
    shown = await delivery(client, account, delivery_id)  # type: ignore[arg-type]
    return shown if shown["status"] == status else None


async def test_a_pending_delivery_retried_by_hand_is_sent_now_and_keeps_its_schedule(
    lclient: httpx.AsyncClient,
    pending: PendingDelivery,
    receiver: Receiver,
    make_runtime: RuntimeFactory,
) -> None:
    account, delivery_id = pending.account, pending.id
    receiver.reply(Reply(500), Reply(500))
    rt = make_runtime()
    waiting = await deliver(rt, delivery_id)
    assert waiting.next_attempt_at is not None
    response = await lclient.post(f"/v1/webhooks/deliveries/{delivery_id}/retry", headers=account.headers)
    assert response.status_code == 202, response.text
    assert response.json()["max_attempts"] == 8
    again = await deliver(make_runtime(), delivery_id)
    assert len(receiver.requests) == 2
    assert again.next_attempt_at is not None  # still on its schedule after the manual attempt failed


async def test_retrying_a_delivery_to_a_disabled_endpoint_is_a_conflict(
    lclient: httpx.AsyncClient, make_account: AccountFactory, services: Services, receiver: Receiver
) -> None:
    account = await make_account()
    endpoint = await create_endpoint(lclient, account, receiver.url())
    delivery_id = await only_delivery(services, await canceled_task(lclient, account))
    await lclient.patch(f"/v1/webhooks/endpoints/{endpoint['id']}", json={"enabled": False}, headers=account.headers)
    response = await lclient.post(f"/v1/webhooks/deliveries/{delivery_id}/retry", headers=account.headers)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "webhook_endpoint_disabled"


async def test_deliveries_whose_job_was_lost_are_found_by_the_sweep(
    lclient: httpx.AsyncClient,
    make_account: AccountFactory,
    services: Services,
    receiver: Receiver,
    loopback_settings: object,
) -> None:
    """The task ended while no worker listened and Redis then lost everything: the rows in PostgreSQL are
    enough to deliver."""
    account = await make_account()
    task_id = await canceled_task(lclient, account, webhook_url=receiver.url())
    delivery_id = await only_delivery(services, task_id)
    await services.redis.flushdb()  # Redis restarted empty
    assert await requeue_due(services.db, services.queue, dt.datetime.now(dt.UTC)) == 0  # not overdue yet
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=11)
    assert await requeue_due(services.db, services.queue, later) >= 1
    assert await requeue_due(services.db, services.queue, later) == 0  # the same job is not queued twice
    worker = InProcessWorker(loopback_settings)  # type: ignore[arg-type]
    await worker.start()
    try:
        [request] = await receiver.wait_requests(1)
        request.verify(await account_secret(lclient, account))
        await wait_for(lambda: _status_is(lclient, account, delivery_id, "delivered"), what="the delivery")
    finally:
        await worker.stop()


async def test_a_worker_killed_mid_delivery_still_delivers(
    lclient: httpx.AsyncClient,
    make_account: AccountFactory,
    services: Services,
    receiver: Receiver,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    await services.redis.flushdb()
    account = await make_account()
    receiver.reply(Reply(hang=True))  # the first request never gets an answer
    task = await submit(lclient, account, webhook_url=receiver.url())
    worker_env = {
        **env,
        "PORT": str(free_port()),
        "URL_GUARD_ALLOW_LOOPBACK": "true",
        "TASK_JOB_TIMEOUT_S": "8",  # arq hands a dead worker's job to another 8 + 10 s after it started
        "WEBHOOK_TIMEOUT_S": "3",
        "LOG_LEVEL": "INFO",
    }
    first = Subprocess(["worker"], worker_env, tmp_path / "worker1.log")
    try:
        await receiver.wait_requests(1, timeout=60)  # the task ran and the delivery is in flight
        first.kill()  # SIGKILL while the receiver holds the request
    finally:
        first.stop()
    delivery_id = await only_delivery(services, task["id"])
    assert (await delivery(lclient, account, delivery_id))["status"] == "pending"

    second = Subprocess(["worker"], worker_env, tmp_path / "worker2.log")
    try:
        requests = await receiver.wait_requests(2, timeout=90)
        shown = await wait_for(
            lambda: _status_is(lclient, account, delivery_id, "delivered"), timeout=30, what="the delivery"
        )
    finally:
        second.stop()
    assert requests[0].webhook_id == requests[1].webhook_id
    requests[1].verify(await account_secret(lclient, account))
    assert shown["attempt_count"] == 2
    lost, ok = shown["attempts"]
    assert lost["status_code"] is None
    assert lost["error"].startswith("no response recorded: the worker sending this attempt stopped")
    assert ok["status_code"] == 200


async def test_old_logs_are_purged_but_pending_deliveries_are_kept(
    lclient: httpx.AsyncClient,
    make_account: AccountFactory,
    services: Services,
    receiver: Receiver,
    make_runtime: RuntimeFactory,
) -> None:
    account = await make_account()
    done_task = await canceled_task(lclient, account, webhook_url=receiver.url())
    pending_task = await canceled_task(lclient, account, webhook_url=receiver.url())
    await deliver(make_runtime(), await only_delivery(services, done_task))
    await services.db.execute(
        "UPDATE webhook_events SET created_at = now() - interval '31 days' WHERE task_id = ANY($1::uuid[])",
        [uuid.UUID(done_task), uuid.UUID(pending_task)],
    )
    assert await purge_logs(services.db, dt.datetime.now(dt.UTC)) >= 1
    assert await _ids(services, done_task) == []  # event, delivery and attempts are gone
    assert len(await _ids(services, pending_task)) == 1  # still being delivered: kept
