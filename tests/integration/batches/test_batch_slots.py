"""A batch submit's tasks take in-flight slots as single submits do: one per task created, all or none; a batch
that does not fit is refused with the single submit's 429 and creates nothing; slots come back when tasks end,
and a batch refused for another reason (402) or replayed by its idempotency keys keeps none."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from shared.ratelimits.request_limits import set_account_limits
from shared.services import Services
from tests.conftest import AccountFactory
from tests.integration.ratelimits.test_request_limits import cancel_all, limited, slot_key

if TYPE_CHECKING:
    from tests.conftest import TestAccount


def _tasks(n: int, prefix: str, keyed: bool = False) -> list[dict[str, Any]]:
    return [
        {"model": "flux-schnell", "input": {"prompt": f"{prefix} fox {i}"}, **({"idempotency_key": f"{prefix}-{i}"}
                                                                              if keyed else {})}
        for i in range(n)
    ]  # fmt: skip


async def _batch(client: httpx.AsyncClient, account: TestAccount, tasks: list[dict[str, Any]]) -> httpx.Response:
    return await client.post("/v1/tasks/batch", json={"tasks": tasks}, headers=account.headers)


async def _in_flight(services: Services, account: TestAccount) -> int:
    return int(await services.redis.zcard(slot_key(services, "account", account.id)))


async def test_batch_tasks_take_in_flight_slots_all_or_none(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    account = await limited(make_account, services, inflight=5)
    first = _tasks(3, "first", keyed=True)
    assert (await _batch(client, account, first)).status_code == 202
    assert await _in_flight(services, account) == 3
    limits = (await client.get("/v1/rate-limits", headers=account.headers)).json()
    assert limits["account"]["max_inflight_tasks"] == {"limit": 5, "in_flight": 3}

    refused = await _batch(client, account, _tasks(3, "second"))  # 3 more do not fit in the 2 left
    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert error["code"] == "too_many_concurrent_tasks" and error["type"] == "rate_limit_error"
    assert "in-flight limit (5 tasks" in error["message"] and "2 free" in error["message"]
    assert int(refused.headers["Retry-After"]) >= 1
    assert await services.db.fetchval("SELECT count(*) FROM tasks WHERE account_id = $1", account.id) == 3
    assert await _in_flight(services, account) == 3

    assert (await _batch(client, account, _tasks(2, "third"))).status_code == 202  # these fit
    assert await _in_flight(services, account) == 5
    # At the limit: a single submit is refused the same way; a batch replayed by its keys creates nothing, needs none.
    single = await client.post("/v1/tasks", json=_tasks(1, "single")[0], headers=account.headers)
    assert single.status_code == 429 and single.json()["error"]["code"] == "too_many_concurrent_tasks"
    replayed = await _batch(client, account, first)
    assert replayed.status_code == 202 and [item["status"] for item in replayed.json()["data"]] == [200, 200, 200]
    assert await _in_flight(services, account) == 5

    await cancel_all(services, account.id)  # the tasks end: their slots come back
    assert await _in_flight(services, account) == 0
    assert (await _batch(client, account, _tasks(5, "fourth"))).status_code == 202
    await cancel_all(services, account.id)


async def test_a_batch_refused_for_its_price_keeps_no_slot(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    poor = await make_account(credits="0.000001")
    await set_account_limits(services.db, services.redis, poor.id, max_inflight=10)
    refused = await _batch(client, poor, _tasks(3, "poor"))
    assert refused.status_code == 402, refused.text
    assert await _in_flight(services, poor) == 0  # the slots taken before the holds were refused came back
    assert await services.db.fetchval("SELECT count(*) FROM tasks WHERE account_id = $1", poor.id) == 0
