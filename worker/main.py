"""What a worker runs: every job of ``shared.infra.jobs`` with its function and limits, the periodic jobs, and
the arq ``Worker`` settings, built from ``Settings``. ``worker.process.WorkerProcess`` runs them; ``conduit
worker`` runs one process. Run as many as the load needs, on as many machines: they coordinate only through
PostgreSQL and Redis."""

from __future__ import annotations

from typing import Any, cast

from arq import cron, func
from arq.cron import CronJob
from arq.typing import WorkerCoroutine
from arq.worker import Function

from shared.infra import jobs
from shared.infra.tracing import traced_job
from shared.settings import Settings
from worker.jobs.batches import run_openai_batch
from worker.jobs.billing import billing_sweep, process_stripe_event
from worker.jobs.sweeps import housekeeping, sweep
from worker.jobs.tasks import cancel_upstream_job, run_task
from worker.jobs.webhooks import deliver_webhook, webhook_sweep

SWEEP_SECONDS = {0, 15, 30, 45}
BILLING_SWEEP_SECONDS = {7, 37}
HOUSEKEEPING_MINUTES = set(range(2, 60, 5))  # retention and pruning


def _job(fn: Any) -> WorkerCoroutine:
    """Our jobs take the typed ``WorkerContext``; arq's protocol says ``dict``. Same object at run time."""
    return cast(WorkerCoroutine, fn)


def _traced(name: str, fn: Any) -> WorkerCoroutine:
    """A job handed over by a producer: it continues the trace the producer started (``shared.infra.tracing``)."""
    return _job(traced_job(name, fn))


def job_functions(settings: Settings) -> list[Function]:
    # The lease a running task holds must end before arq hands the job to another worker. arq does that
    # (longest function timeout + 10 s) after a worker vanished, so no function may have a longer timeout
    # than task jobs (the others use the default, which is the same).
    return [
        func(
            _traced(jobs.RUN_TASK, run_task),
            name=jobs.RUN_TASK,
            timeout=settings.task_job_timeout_s,
            max_tries=settings.task_max_tries,
            keep_result=0,
        ),
        func(
            _traced(jobs.CANCEL_UPSTREAM, cancel_upstream_job),
            name=jobs.CANCEL_UPSTREAM,
            timeout=settings.task_job_timeout_s,
            max_tries=3,
            keep_result=0,
        ),
        # the OpenAI Batch API: a batch's lines, run as batch work (on the batch queue)
        func(
            _traced(jobs.RUN_OPENAI_BATCH, run_openai_batch),
            name=jobs.RUN_OPENAI_BATCH,
            timeout=settings.task_job_timeout_s,
            max_tries=5,
            keep_result=0,
        ),
        # webhooks: one job per delivery attempt; the default timeout (task_job_timeout_s)
        func(_traced(jobs.DELIVER_WEBHOOK, deliver_webhook), name=jobs.DELIVER_WEBHOOK, max_tries=5, keep_result=0),
        # billing: one job per Stripe event
        func(
            _traced(jobs.PROCESS_STRIPE_EVENT, process_stripe_event),
            name=jobs.PROCESS_STRIPE_EVENT,
            max_tries=20,
            keep_result=0,
        ),
    ]


def _periodic(fn: Any, name: str, **when: Any) -> CronJob:
    """A periodic job: started by one worker per tick (arq's ``unique``), its result not kept."""
    return cron(_job(fn), name=name, unique=True, keep_result=0, **when)


def periodic_jobs() -> list[CronJob]:
    return [
        _periodic(sweep, jobs.SWEEP, second=SWEEP_SECONDS, run_at_startup=True),
        _periodic(webhook_sweep, jobs.WEBHOOK_SWEEP, second=SWEEP_SECONDS, run_at_startup=True),
        _periodic(billing_sweep, jobs.BILLING_SWEEP, second=BILLING_SWEEP_SECONDS),
        _periodic(housekeeping, jobs.HOUSEKEEPING, minute=HOUSEKEEPING_MINUTES, second=23),
    ]


BATCH_POLL_DELAY_S = 0.1


def batch_worker_settings(settings: Settings) -> dict[str, Any]:
    """The arq ``Worker`` of batch work in the same process: the batch queue, with a job limit of its own (so
    batch work never takes an interactive job's place), no periodic jobs."""
    return {
        **worker_settings(settings),
        "queue_name": jobs.BATCH_QUEUE,
        "max_jobs": settings.batches.worker_max_jobs,
        "cron_jobs": [],
        # Batch work is not latency-sensitive: polling its queue 200 times a second cost the worker CPU that
        # interactive tasks need.
        "poll_delay": max(settings.worker_poll_delay_s, BATCH_POLL_DELAY_S),
    }


def worker_settings(settings: Settings) -> dict[str, Any]:
    """The arq ``Worker`` arguments (its Redis pool and context come from the process's services)."""
    return {
        "functions": job_functions(settings),
        "cron_jobs": periodic_jobs(),
        "queue_name": jobs.QUEUE,
        "max_jobs": settings.worker_max_jobs,
        "poll_delay": settings.worker_poll_delay_s,
        "job_timeout": settings.task_job_timeout_s,
        "keep_result": 0,
        # arq's health check key, refreshed every WORKER_HEARTBEAT_S (<= 60 s), like the process's heartbeat
        "health_check_interval": settings.operating.worker_heartbeat_s,
        "allow_abort_jobs": False,
        # signals and the shutdown grace period are the process's (worker.process)
        "handle_signals": False,
    }
