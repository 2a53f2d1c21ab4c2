"""What follows the commit of tasks' terminal transitions, in one Redis round trip: every task that ended gives
back its in-flight slots (per account and per API key) and publishes its final event, also when a batch of
completions is refused and redone task by task, and also after Redis lost its script cache."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from shared.events.publish import account_stream_key, task_stream_key
from shared.services import Services
from shared.tasks import lifecycle
from shared.tasks.completions import TaskCompletions
from shared.tasks.records import TaskRecord
from tests.conftest import AccountFactory
from tests.integration.helpers import task
from tests.integration.tasks.test_group_completions import running_tasks, succeeded


def slot_sets(services: Services, record: TaskRecord) -> list[str]:
    keys = services.request_limits.slots.keys(record.account_id, record.api_key_id)
    return [services.limiter.prefix + key for key in keys]


async def holds_slots(services: Services, record: TaskRecord) -> list[bool]:
    """Whether the task holds its slot in each of its slot sets (the account's, the key's)."""
    return [await services.redis.zscore(key, str(record.id)) is not None for key in slot_sets(services, record)]


FINAL = {"task.succeeded", "task.failed", "task.canceled"}


async def final_events(services: Services, stream: str, task_id: uuid.UUID) -> list[str]:
    """The final events of the task in the stream (its ``task.queued`` came from the submit)."""
    entries: list[tuple[bytes, dict[bytes, bytes]]] = await services.redis.xrange(stream)
    types = [fields[b"type"].decode() for _, fields in entries if fields[b"task"].decode() == str(task_id)]
    return [t for t in types if t in FINAL]


async def test_a_completion_batch_frees_every_slot_and_tells_every_end_even_when_one_task_is_refused(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    await services.redis.flushdb()
    account = await make_account(credits="10")
    records = await running_tasks(client, services, account, 5)
    for record in records:
        assert record.api_key_id is not None
        assert await holds_slots(services, record) == [True, True]  # the submit took them
    completions = TaskCompletions(services.db)
    slots, events = services.request_limits.slots, services.events
    # The last task's statement fails (a negative charge, which the ledger refuses): the batch is redone task by
    # task. The first task comes twice (a redelivered job): its second completion loses its race.
    items = [*(succeeded(r, 300_000) for r in records[:4]), succeeded(records[4], -1), succeeded(records[0], 300_000)]
    outcomes: list[Any] = await asyncio.gather(
        *(completions.complete(item, slots=slots, events=events) for item in items), return_exceptions=True
    )
    assert completions.counts["fallbacks"] == 1
    assert isinstance(outcomes[4], Exception)
    assert sum(outcome is None for outcome in outcomes) == 1  # the redelivery
    for record in records[:4]:
        assert (await task(client, account, str(record.id)))["status"] == "succeeded"
        assert await holds_slots(services, record) == [False, False]
        assert await final_events(services, task_stream_key(record.id), record.id) == ["task.succeeded"]
        assert await final_events(services, account_stream_key(account.id), record.id) == ["task.succeeded"]
    refused = records[4]
    assert (await task(client, account, str(refused.id)))["status"] == "running"
    assert await holds_slots(services, refused) == [True, True]
    assert await final_events(services, task_stream_key(refused.id), refused.id) == []


async def test_the_final_effects_survive_an_emptied_script_cache(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    """Redis restarted without its scripts: the release and the event are sent by hash, refused, and sent again
    once the scripts are loaded, each exactly once."""
    await services.redis.flushdb()
    account = await make_account(credits="10")
    done, failed = await running_tasks(client, services, account, 2)
    slots, events = services.request_limits.slots, services.events
    await services.redis.script_flush()
    assert await lifecycle.complete(services.db, done, outputs=[], usage=succeeded(done, 1).usage, charge=100_000,
                                    provider="local", slots=slots, events=events)  # fmt: skip
    await services.redis.script_flush()
    assert await lifecycle.fail(services.db, failed.id, code="upstream_error", message="no", slots=slots, events=events)
    for record, final in ((done, "task.succeeded"), (failed, "task.failed")):
        assert await holds_slots(services, record) == [False, False]
        assert await final_events(services, task_stream_key(record.id), record.id) == [final]
