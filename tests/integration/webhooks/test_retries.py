"""Retries on the schedule, walked with a test clock: the delivery function is called as the job would be,
against a real receiver, and the clock decides what is due."""

from __future__ import annotations

import datetime as dt
import email.utils

import httpx

from shared.services import Services
from shared.webhooks import MAX_ATTEMPTS, RETRY_SCHEDULE_S
from shared.webhooks.delivery import deliver
from tests.conftest import AccountFactory
from tests.integration.webhooks.conftest import ManualClock, PendingDelivery, RuntimeFactory
from tests.integration.webhooks.flows import (
    account_secret,
    canceled_task,
    create_endpoint,
    delivery,
    delivery_ids,
    only_delivery,
)
from tests.integration.webhooks.receiver import Receiver, Reply


async def test_500_twice_then_success_keeps_the_webhook_id_and_follows_the_schedule(
    lclient: httpx.AsyncClient,
    pending: PendingDelivery,
    receiver: Receiver,
    make_runtime: RuntimeFactory,
    clock: ManualClock,
) -> None:
    account, task_id, delivery_id = pending.account, pending.task_id, pending.id
    secret = await account_secret(lclient, account)
    rt = make_runtime()
    receiver.reply(Reply(500, body=b"boom"), Reply(500))
    t0 = clock()

    first = await deliver(rt, delivery_id)
    assert first.next_attempt_at == t0 + dt.timedelta(seconds=5)

    clock.advance(4)  # a job that runs early sends nothing and asks to run again when due
    early = await deliver(rt, delivery_id)
    assert early.not_due_in == 1.0
    assert len(receiver.requests) == 1

    clock.advance(1)
    second = await deliver(rt, delivery_id)
    assert second.next_attempt_at == t0 + dt.timedelta(seconds=5 + 300)

    clock.advance(300)
    third = await deliver(rt, delivery_id)
    assert third.next_attempt_at is None
    assert await deliver(rt, delivery_id) == third.__class__()  # finished: nothing more to do

    assert len(receiver.requests) == 3
    assert len({r.webhook_id for r in receiver.requests}) == 1
    for request in receiver.requests:
        payload = request.verify(secret)
        assert payload["type"] == "task.canceled"
        assert payload["data"]["id"] == task_id
        assert payload["id"] == request.webhook_id

    shown = await delivery(lclient, account, delivery_id)
    assert shown["status"] == "delivered"
    assert shown["event_id"] == receiver.requests[0].webhook_id
    assert [a["status_code"] for a in shown["attempts"]] == [500, 500, 200]
    assert [a["error"] for a in shown["attempts"]] == ["HTTP 500", "HTTP 500", None]
    assert shown["attempts"][0]["response_body"] == "boom"
    started = [dt.datetime.fromisoformat(a["started_at"]) for a in shown["attempts"]]
    assert started == [t0, t0 + dt.timedelta(seconds=5), t0 + dt.timedelta(seconds=305)]
    assert all(a["latency_ms"] is not None and a["latency_ms"] >= 0 for a in shown["attempts"])


async def test_a_receiver_that_keeps_failing_gets_the_whole_schedule_then_the_delivery_fails(
    lclient: httpx.AsyncClient,
    pending: PendingDelivery,
    receiver: Receiver,
    make_runtime: RuntimeFactory,
    clock: ManualClock,
) -> None:
    account, delivery_id = pending.account, pending.id
    rt = make_runtime()
    receiver.default = Reply(502)
    t0 = clock()
    gaps = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        outcome = await deliver(rt, delivery_id)
        assert len(receiver.requests) == attempt
        if outcome.next_attempt_at is None:
            break
        gaps.append((outcome.next_attempt_at - clock()).total_seconds())
        clock.current = outcome.next_attempt_at
    assert gaps == [float(s) for s in RETRY_SCHEDULE_S[1:]]  # 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
    assert clock() - t0 == dt.timedelta(seconds=sum(RETRY_SCHEDULE_S))
    shown = await delivery(lclient, account, delivery_id)
    assert shown["status"] == "failed"
    assert shown["attempt_count"] == MAX_ATTEMPTS
    assert shown["next_attempt_at"] is None
    assert shown["last_status_code"] == 502


async def test_retry_after_on_429_and_503_sets_the_next_attempt(
    lclient: httpx.AsyncClient,
    pending: PendingDelivery,
    receiver: Receiver,
    make_runtime: RuntimeFactory,
    clock: ManualClock,
) -> None:
    delivery_id = pending.id
    rt = make_runtime()
    in_two_hours = email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(hours=2), usegmt=True)
    receiver.reply(
        Reply(503, headers={"Retry-After": "120"}),
        Reply(429, headers={"Retry-After": in_two_hours}),
        Reply(500, headers={"Retry-After": "3600"}),  # only 429 and 503 carry a meaningful Retry-After
    )
    first = await deliver(rt, delivery_id)
    assert first.next_attempt_at == clock() + dt.timedelta(seconds=120)  # instead of 5 s
    clock.current = first.next_attempt_at
    second = await deliver(rt, delivery_id)
    assert second.next_attempt_at is not None
    waited = (second.next_attempt_at - clock()).total_seconds()
    assert 7100 <= waited <= 7201  # the HTTP date, instead of 5 min
    clock.current = second.next_attempt_at
    third = await deliver(rt, delivery_id)
    assert third.next_attempt_at == clock() + dt.timedelta(seconds=RETRY_SCHEDULE_S[3])


async def test_an_endpoint_failing_for_five_days_is_disabled(
    lclient: httpx.AsyncClient,
    make_account: AccountFactory,
    services: Services,
    receiver: Receiver,
    make_runtime: RuntimeFactory,
    clock: ManualClock,
) -> None:
    account = await make_account()
    endpoint = await create_endpoint(lclient, account, receiver.url())
    first, second, third = [await only_delivery(services, await canceled_task(lclient, account)) for _ in range(3)]
    rt = make_runtime()
    receiver.default = Reply(500)
    t0 = clock()

    await deliver(rt, first)
    shown = (await lclient.get(f"/v1/webhooks/endpoints/{endpoint['id']}", headers=account.headers)).json()
    assert shown["enabled"] is True
    assert dt.datetime.fromisoformat(shown["failing_since"]) == t0

    clock.advance(4 * 86400)  # four days of failures: still enabled
    await deliver(rt, second)
    shown = (await lclient.get(f"/v1/webhooks/endpoints/{endpoint['id']}", headers=account.headers)).json()
    assert shown["enabled"] is True

    clock.advance(86400)  # five days
    await deliver(rt, second)
    shown = (await lclient.get(f"/v1/webhooks/endpoints/{endpoint['id']}", headers=account.headers)).json()
    assert shown["enabled"] is False
    assert shown["disabled_reason"] == "failing"

    sent = len(receiver.requests)
    await deliver(rt, third)  # a disabled endpoint gets nothing more; its pending deliveries fail
    assert len(receiver.requests) == sent
    assert (await delivery(lclient, account, third))["status"] == "failed"
    assert (await delivery(lclient, account, third))["last_error"] == "not sent: the endpoint is disabled"

    # Re-enabling clears the failure streak; new events reach it again.
    response = await lclient.patch(
        f"/v1/webhooks/endpoints/{endpoint['id']}", json={"enabled": True}, headers=account.headers
    )
    assert response.json()["enabled"] is True
    assert response.json()["failing_since"] is None
    task_id = await canceled_task(lclient, account)
    assert len(await delivery_ids(services, task_id)) == 1


async def test_a_success_resets_the_failure_streak(
    lclient: httpx.AsyncClient,
    make_account: AccountFactory,
    services: Services,
    receiver: Receiver,
    make_runtime: RuntimeFactory,
    clock: ManualClock,
) -> None:
    account = await make_account()
    endpoint = await create_endpoint(lclient, account, receiver.url())
    first, second = [await only_delivery(services, await canceled_task(lclient, account)) for _ in range(2)]
    rt = make_runtime()
    receiver.reply(Reply(500), Reply(200), Reply(500))
    await deliver(rt, first)
    clock.advance(3 * 86400)
    await deliver(rt, second)  # success
    clock.advance(3 * 86400)
    await deliver(rt, first)  # fails again: six days after the first failure, but a success came between
    shown = (await lclient.get(f"/v1/webhooks/endpoints/{endpoint['id']}", headers=account.headers)).json()
    assert shown["enabled"] is True
    assert dt.datetime.fromisoformat(shown["failing_since"]) == clock()
