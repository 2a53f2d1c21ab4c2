"""Submitting many tasks at once (``POST /v1/tasks/batch``): every item validated together, then in one
transaction the idempotency keys claimed, the tasks inserted (one statement) and one hold per task placed (one
statement, ``shared.ledger.place_task_holds``: all or nothing, so a balance that does not cover the worst case
of them all refuses the lot), then their events
published and their jobs enqueued in one round trip each, on the batch queue (batch work: interactive tasks
never wait behind it).

An item may carry an ``Idempotency-Key``: an item whose key created a task before (with the same body)
answers that task and creates nothing; with another body it is refused (409) like a single submit's retry.
``atomic`` (the default) refuses the whole batch for any invalid item; otherwise each invalid item gets its
own error and the valid ones are submitted.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from shared.accounts.key_policy import check_model_allowed
from shared.accounts.keys import Principal
from shared.catalog import Catalog
from shared.events import TASK_QUEUED
from shared.events.publish import NewEvent, TaskEvents
from shared.infra import jobs
from shared.infra.db import Database
from shared.infra.errors import ConduitError, Conflict, InvalidInput
from shared.infra.ids import uuid7
from shared.infra.queue import JobQueue
from shared.infra.urlguard import UrlGuard
from shared.ledger import place_task_holds, reserve_key_spend
from shared.media.inputs import media_parameters
from shared.moderation.pipeline import Moderator
from shared.providers import ProviderRegistry
from shared.tasks.creation import insert_tasks
from shared.tasks.records import TASK_ROWS, TaskRecord
from shared.tasks.submit import (
    MAX_IDEMPOTENCY_KEY,
    PreparedTask,
    TaskSubmission,
    new_task,
    prepare,
    submission_hash,
)

if TYPE_CHECKING:
    from shared.ratelimits.request_limits import RequestLimits

log = logging.getLogger(__name__)

MAX_BATCH_TASKS = 1_000


@dataclass(frozen=True, slots=True)
class BatchItemResult:
    """One item's outcome: its task (``created`` False for an idempotent replay) or its error."""

    task: TaskRecord | None = None
    created: bool = False
    error: ConduitError | None = None


def _item_error(index: int, error: ConduitError) -> ConduitError:
    """The item's error, its ``param`` placed in the batch (``tasks[3].input.prompt``)."""
    error.param = f"tasks[{index}]" + (f".{error.param}" if error.param else "")
    return error


async def submit_batch(
    *,
    db: Database,
    queue: JobQueue,
    catalog: Catalog,
    providers: ProviderRegistry,
    principal: Principal,
    submissions: list[TaskSubmission],
    atomic: bool = True,
    moderator: Moderator,
    url_guard: UrlGuard | None = None,
    events: TaskEvents | None = None,
    limits: RequestLimits | None = None,
) -> list[BatchItemResult]:
    """Submit every valid item (all of them, or raise, when ``atomic``). One result per item, in order. Each
    item is moderated as its single submit would be; input files are for single submits only. With ``limits``,
    the tasks take in-flight slots as single submits do, all or none (``_take_slots``)."""
    if not 0 < len(submissions) <= MAX_BATCH_TASKS:
        raise InvalidInput(f"tasks must hold 1 to {MAX_BATCH_TASKS} tasks", param="tasks")
    results: list[BatchItemResult | None] = [None] * len(submissions)
    prepared: dict[int, PreparedTask] = {}
    keys_seen: set[str] = set()
    for index, submission in enumerate(submissions):
        try:
            prepared[index] = await _prepare_item(
                catalog, providers, moderator, principal, submission, url_guard, keys_seen
            )
        except ConduitError as error:
            if atomic:
                raise _item_error(index, error) from None
            results[index] = BatchItemResult(error=_item_error(index, error))
    if prepared:
        ids = {index: uuid7() for index in prepared}
        slotted = await _take_slots(db, limits, principal, submissions, ids)
        inserted: dict[int, BatchItemResult] = {}
        try:
            inserted = await _insert(db, principal, submissions, prepared, ids, atomic=atomic)
        finally:
            unused = [
                task_id for index, task_id in slotted.items() if not (index in inserted and inserted[index].created)
            ]
            if limits is not None and unused:  # refused, a replay, or an item's error: no task holds these slots
                await limits.slots.release(principal.account_id, principal.api_key_id, *unused)
        for index, result in inserted.items():
            results[index] = result
    created = [result.task for result in results if result is not None and result.created and result.task]
    log.info("batch of %d submitted: %d task(s) created", len(submissions), len(created))
    await _hand_over(queue, events, created)
    return [result or BatchItemResult() for result in results]


async def _take_slots(
    db: Database,
    limits: RequestLimits | None,
    principal: Principal,
    submissions: list[TaskSubmission],
    ids: dict[int, uuid.UUID],
) -> dict[int, uuid.UUID]:
    """The in-flight slots of the tasks the batch will create, all or none (429 ``too_many_concurrent_tasks``
    otherwise, nothing submitted): an item whose idempotency key was used before creates nothing and needs none.
    Returns the items that took one (by index)."""
    if limits is None:
        return {}
    keys = [key for index in ids if (key := submissions[index].idempotency_key)]
    used = set()
    if keys:
        rows = await db.fetch(
            "SELECT key FROM idempotency_records WHERE account_id = $1 AND key = ANY($2::text[])",
            principal.account_id,
            keys,
        )
        used = {row["key"] for row in rows}
    needing = {index: task_id for index, task_id in ids.items() if submissions[index].idempotency_key not in used}
    taken = await limits.take_task_slots(principal, list(needing.values()), db)
    return needing if taken else {}


async def _prepare_item(
    catalog: Catalog,
    providers: ProviderRegistry,
    moderator: Moderator,
    principal: Principal,
    submission: TaskSubmission,
    url_guard: UrlGuard | None,
    keys_seen: set[str],
) -> PreparedTask:
    check_model_allowed(principal, submission.model)
    item = prepare(catalog, providers, submission)
    for parameter in media_parameters(item.model):
        if parameter.name in item.params:
            raise InvalidInput(
                f"{parameter.name}: input files are taken by single submits (POST /v1/tasks), not in a batch",
                param=f"input.{parameter.name}",
            )
    await moderator.check_request(
        principal, item.params, source=submission.source, model=item.model.id, kind=item.model.kind
    )
    if item.webhook_url is not None:
        await (url_guard or UrlGuard()).check(item.webhook_url, param="webhook_url")
    key = submission.idempotency_key
    if key is not None:
        if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
            raise InvalidInput(f"idempotency keys must be 1-{MAX_IDEMPOTENCY_KEY} characters", param="idempotency_key")
        if key in keys_seen:
            raise InvalidInput("this idempotency key is used by another task of the batch", param="idempotency_key")
        keys_seen.add(key)
    return item


_CLAIM_KEYS = """
INSERT INTO idempotency_records (id, account_id, key, request_hash)
SELECT id, $1, key, hash FROM unnest($2::text[], $3::text[], $4::uuid[]) AS k(key, hash, id)
ON CONFLICT (account_id, key) DO NOTHING
RETURNING key
"""

_REPLAYS = """
SELECT r.key, r.request_hash, t.* FROM idempotency_records r JOIN tasks t ON t.id = r.task_id
WHERE r.account_id = $1 AND r.key = ANY($2::text[])
"""

_LINK_KEYS = """
UPDATE idempotency_records r SET task_id = k.task_id
FROM unnest($2::text[], $3::uuid[]) AS k(key, task_id)
WHERE r.account_id = $1 AND r.key = k.key
"""


async def _insert(
    db: Database,
    principal: Principal,
    submissions: list[TaskSubmission],
    prepared: dict[int, PreparedTask],
    ids: dict[int, uuid.UUID],
    *,
    atomic: bool,
) -> dict[int, BatchItemResult]:
    """In one transaction: claim the items' idempotency keys, insert the new tasks with their holds, link the
    keys to them. Items whose key was used before answer the task it made; a key used with another body is the
    item's error (the batch's, rolled back, when ``atomic``)."""
    results: dict[int, BatchItemResult] = {}
    keyed = {index: submissions[index].idempotency_key for index in prepared if submissions[index].idempotency_key}
    hashes = {index: submission_hash(submissions[index]) for index in keyed}
    async with db.transaction() as conn:
        claimed: set[str] = set()
        if keyed:
            rows = await conn.fetch(
                _CLAIM_KEYS,
                principal.account_id,
                list(keyed.values()),
                [hashes[index] for index in keyed],
                [uuid7() for _ in keyed],
            )
            claimed = {row["key"] for row in rows}
        replayed = {index: key for index, key in keyed.items() if key not in claimed}
        if replayed:
            found = {
                row["key"]: row for row in await conn.fetch(_REPLAYS, principal.account_id, list(replayed.values()))
            }
            for index, key in replayed.items():
                row = found.get(key)
                if row is None:
                    error: ConduitError = Conflict(
                        "a request with this idempotency key is still in progress", code="idempotency_in_progress"
                    )
                elif row["request_hash"] != hashes[index]:
                    error = Conflict(
                        "this idempotency key was already used with a different request body",
                        code="idempotency_key_reused",
                        param="idempotency_key",
                    )
                else:
                    results[index] = BatchItemResult(task=TASK_ROWS.from_row(row))
                    continue
                if atomic:
                    raise _item_error(index, error)
                results[index] = BatchItemResult(error=_item_error(index, error))
        new = [index for index in prepared if index not in replayed]
        new_tasks = [new_task(principal, prepared[index], ids[index], batch_work=True) for index in new]
        holds = [task.hold for task in new_tasks]
        if new:
            tasks = await insert_tasks(conn, new_tasks)
            await place_task_holds(conn, principal.account_id, holds, what=f"these {len(new)} tasks")
            for hold in holds:
                await reserve_key_spend(conn, principal, hold.id, hold.amount)  # the key's spend cap, if it has one
            for index in new:
                results[index] = BatchItemResult(task=tasks[ids[index]], created=True)
            linked = [index for index in new if index in keyed]
            if linked:
                await conn.execute(
                    _LINK_KEYS, principal.account_id, [keyed[index] for index in linked], [ids[i] for i in linked]
                )
    return results


async def _hand_over(queue: JobQueue, events: TaskEvents | None, tasks: list[TaskRecord]) -> None:
    """After the commit: the tasks' task.queued events, then their jobs, one round trip each."""
    if events is not None:
        await events.publish_many([NewEvent(TASK_QUEUED, task.id, task.account_id, {}) for task in tasks])
    try:
        await queue.enqueue_many([jobs.run_task(task.id, batch_work=True) for task in tasks])
    except (OSError, ConnectionError, TimeoutError, RedisError) as exc:
        # The tasks are safely queued in PostgreSQL; the sweep enqueues them once Redis is back.
        log.warning("enqueue failed for a batch of %d tasks, the sweep will retry: %s", len(tasks), exc)
