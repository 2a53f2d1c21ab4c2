"""Every job named in ``shared.infra.jobs`` is run by the workers, under that name."""

from __future__ import annotations

import uuid

from shared.infra import jobs
from shared.settings import Settings
from worker.main import batch_worker_settings, worker_settings

NAMED_JOBS = {
    jobs.RUN_TASK,
    jobs.CANCEL_UPSTREAM,
    jobs.DELIVER_WEBHOOK,
    jobs.PROCESS_STRIPE_EVENT,
    jobs.RUN_OPENAI_BATCH,
    jobs.SWEEP,
    jobs.WEBHOOK_SWEEP,
    jobs.BILLING_SWEEP,
    jobs.HOUSEKEEPING,
}


def test_the_worker_registers_every_named_job_and_nothing_else() -> None:
    settings = worker_settings(Settings.from_env({}))
    registered = {function.name for function in settings["functions"]} | {job.name for job in settings["cron_jobs"]}
    assert registered == NAMED_JOBS
    assert settings["queue_name"] == jobs.QUEUE
    batch = batch_worker_settings(Settings.from_env({}))
    assert batch["queue_name"] == jobs.BATCH_QUEUE
    assert [function.name for function in batch["functions"]] == [function.name for function in settings["functions"]]
    assert batch["cron_jobs"] == []  # periodic jobs run once per tick, from the interactive worker


def test_job_ids_make_handing_the_same_work_over_twice_a_no_op() -> None:
    task_id, delivery_id = uuid.uuid4(), uuid.uuid4()
    assert jobs.run_task(task_id).job_id == str(task_id)  # the sweep re-enqueues a task under the same id
    assert jobs.cancel_upstream(task_id).job_id != jobs.run_task(task_id).job_id
    listener = jobs.deliver_webhook(delivery_id, attempts=0, due_ms=1_000, now_ms=400)
    sweep = jobs.deliver_webhook(delivery_id, attempts=0, due_ms=1_000, now_ms=9_000)
    assert listener.job_id == sweep.job_id and (listener.defer_ms, sweep.defer_ms) == (600, 0)
