"""Running a task on a worker: claim it, call the provider, store the outputs, settle.

``execute_task`` is what the arq job calls. It is safe to run any number of times for the same task
(arq delivers at least once): the claim is a compare-and-set with a lease, and settlement only happens
for a task that is still running.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.catalog import Catalog
from shared.catalog.pricing import cost
from shared.db import Database
from shared.providers import ProviderRegistry
from shared.providers.base import Completed, GenerationRequest, ProviderError
from shared.storage import LocalStorage
from shared.tasks import lifecycle
from shared.tasks.outputs import output_prefix, store_outputs
from shared.tasks.records import TaskRecord

if TYPE_CHECKING:
    from shared.request_limits import TaskSlots

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TaskRuntime:
    db: Database
    catalog: Catalog
    providers: ProviderRegistry
    storage: LocalStorage
    lease_s: float
    slots: TaskSlots | None = None  # rate limits (issue 8): in-flight slots given back when a task ends


async def execute_task(rt: TaskRuntime, task_id: uuid.UUID) -> float | None:
    """Run the task if it is ours to run. Returns a delay in seconds when the job should run again later."""
    task = await lifecycle.claim(rt.db, task_id, lease_s=rt.lease_s)
    if task is None:
        return None  # terminal already, or another worker holds the lease
    model = rt.catalog.get(task.model)
    if model is None:
        await lifecycle.fail(
            rt.db, task.id, code="model_removed", message=f"model {task.model!r} is no longer offered", slots=rt.slots
        )
        return None
    remaining = (task.deadline_at - dt.datetime.now(dt.UTC)).total_seconds()
    if remaining <= 0:
        await lifecycle.fail(
            rt.db, task.id, code="deadline_exceeded", message="the task ran past its deadline", slots=rt.slots
        )
        return None
    routes = rt.providers.usable_routes(model)
    if not routes:
        await lifecycle.fail(
            rt.db, task.id, code="model_unavailable", message="no provider can serve this model now", slots=rt.slots
        )
        return None
    route = routes[0]
    provider = rt.providers.get(route.provider)
    assert provider is not None
    request = GenerationRequest(task_id=task.id, model=model, route=route, params=task.input)
    try:
        async with asyncio.timeout(remaining):
            result = await provider.start(request)
    except ProviderError as exc:
        await lifecycle.fail(
            rt.db, task.id, code=exc.code, message=exc.message, provider=route.provider, slots=rt.slots
        )
        return None
    except TimeoutError:
        await lifecycle.fail(
            rt.db, task.id, code="deadline_exceeded", message="the provider did not answer in time", slots=rt.slots
        )
        return None
    if not isinstance(result, Completed):  # pragma: no cover - queue-based providers arrive with issue 3
        raise NotImplementedError("polling upstream jobs")
    await _settle(rt, task, result, route.provider)
    return None


async def _settle(rt: TaskRuntime, task: TaskRecord, result: Completed, provider: str) -> None:
    model = rt.catalog.get(task.model)
    assert model is not None
    try:
        outputs = await store_outputs(rt.storage, task.id, result.outputs)
    except ProviderError as exc:
        await lifecycle.fail(rt.db, task.id, code=exc.code, message=exc.message, provider=provider, slots=rt.slots)
        return
    usage = dataclasses.replace(result.usage, requests=max(result.usage.requests, 1))  # one call, one request
    charge = cost(model.pricing, usage)
    if charge > task.credits_held:
        log.warning("task %s cost %d exceeds its hold %d; charging the hold", task.id, charge, task.credits_held)
    done = await lifecycle.complete(
        rt.db, task, outputs=outputs, usage=usage, charge=charge, provider=provider, slots=rt.slots
    )
    if not done:
        # Canceled (or finished by another delivery) while we worked: nothing is charged, drop our files
        # unless the winner was a successful run that wrote the same keys.
        current = await rt.db.fetchval("SELECT status FROM tasks WHERE id = $1", task.id)
        if current != "succeeded":
            await rt.storage.delete_prefix(output_prefix(task.id))
