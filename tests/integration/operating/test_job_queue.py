"""Jobs reach the workers one way (``JobQueue.enqueue``), in exactly the form arq's own enqueue writes."""

from __future__ import annotations

import asyncio
import datetime as dt
import pickle
import uuid
from typing import Any

import arq
from arq.constants import job_key_prefix, result_key_prefix

from shared.infra import jobs
from shared.infra.jobs import Job
from shared.services import Services

ARQ_CHANGED = f"arq {arq.VERSION} stores jobs differently: the enqueue script of shared/infra/queue.py must follow"


async def _stored(services: Services, job_id: str) -> tuple[dict[str, Any], int, float]:
    """The job as arq stores it: its pickled definition, the TTL of that key (ms) and its score in the queue."""
    raw = await services.redis.get(job_key_prefix + job_id)
    assert raw is not None, f"no {job_key_prefix}{job_id}: {ARQ_CHANGED}"
    ttl_ms = await services.redis.pttl(job_key_prefix + job_id)
    score = await services.redis.zscore(jobs.QUEUE, job_id)
    assert score is not None, f"{job_id} is not in {jobs.QUEUE}: {ARQ_CHANGED}"
    return pickle.loads(raw), ttl_ms, score


async def test_the_enqueue_script_writes_what_arqs_enqueue_job_writes(services: Services) -> None:
    await services.redis.flushdb()
    delivery_id = uuid.uuid4()
    ours = jobs.deliver_webhook(delivery_id, attempts=1, due_ms=65_000, now_ms=5_000)  # due in a minute
    assert await services.queue.enqueue(ours)
    theirs = f"arq-{uuid.uuid4()}"
    assert await services.redis.enqueue_job(ours.name, *ours.args, _job_id=theirs, _defer_by=dt.timedelta(minutes=1))

    our_def, our_ttl, our_score = await _stored(services, ours.job_id)
    arq_def, arq_ttl, arq_score = await _stored(services, theirs)
    assert our_def.keys() == arq_def.keys(), ARQ_CHANGED
    assert {k: v for k, v in our_def.items() if k != "et"} == {k: v for k, v in arq_def.items() if k != "et"}
    assert our_def["f"] == jobs.DELIVER_WEBHOOK and our_def["a"] == (str(delivery_id),)
    # Enqueued within moments of each other: the same due time and expiry, give or take those moments.
    assert abs(our_score - arq_score) < 5_000, ARQ_CHANGED
    assert abs(our_ttl - arq_ttl) < 5_000, ARQ_CHANGED
    assert abs(our_score - float(our_def["et"]) - 60_000) < 1_000  # due a minute after it was enqueued


async def test_a_job_already_queued_or_finished_is_not_queued_again(services: Services) -> None:
    await services.redis.flushdb()
    task_id = uuid.uuid4()
    assert await services.queue.enqueue(jobs.run_task(task_id)) is True
    assert await services.queue.enqueue(jobs.run_task(task_id)) is False  # the same job id: already queued
    assert await services.redis.zcard(jobs.QUEUE) == 1

    finished = jobs.process_stripe_event(uuid.uuid4())
    await services.redis.set(result_key_prefix + finished.job_id, b"kept result")
    assert await services.queue.enqueue(finished) is False
    assert await services.redis.zcard(jobs.QUEUE) == 1


async def test_concurrent_enqueues_each_get_their_own_answer(services: Services) -> None:
    await services.redis.flushdb()
    task_ids = [uuid.uuid4() for _ in range(20)]
    batch: list[Job] = [jobs.run_task(task_id) for task_id in task_ids] + [jobs.run_task(task_ids[0])]
    answers = await asyncio.gather(*(services.queue.enqueue(job) for job in batch))
    assert answers == [True] * 20 + [False]
    assert await services.redis.zcard(jobs.QUEUE) == 20
