"""arq worker settings, built from ``Settings``. ``conduit worker`` runs one worker process; run as many
as the load needs, on as many machines: they coordinate only through PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import Any, cast

from arq import cron, func
from arq.typing import WorkerCoroutine
from arq.worker import Worker

from shared.billing.events import PROCESS_STRIPE_EVENT
from shared.infra.metrics.store import MetricsFlusher
from shared.infra.queue import CANCEL_UPSTREAM, RUN_TASK, redis_settings
from shared.services import Services
from shared.settings import Settings
from shared.tasks.execution import TaskRuntime
from shared.webhooks.dispatch import DELIVER_WEBHOOK, WebhookWorker
from worker.heartbeat import delete_heartbeat, write_heartbeat
from worker.jobs.billing import billing_sweep, process_stripe_event
from worker.jobs.sweeps import housekeeping, sweep
from worker.jobs.tasks import cancel_upstream_job, run_task
from worker.jobs.webhooks import deliver_webhook, webhook_sweep

log = logging.getLogger(__name__)

SWEEP_SECONDS = {0, 15, 30, 45}
BILLING_SWEEP_SECONDS = {7, 37}
HOUSEKEEPING_MINUTES = set(range(2, 60, 5))  # retention and pruning


def _job(fn: Any) -> WorkerCoroutine:
    """Our jobs take the typed ``WorkerContext``; arq's protocol says ``dict``. Same object at run time."""
    return cast(WorkerCoroutine, fn)


def worker_kwargs(settings: Settings) -> dict[str, Any]:
    _, redis_url = settings.require_connections()
    # The lease a running task holds must end before arq hands the job to another worker. arq does that
    # (longest function timeout + 10 s) after a worker vanished, so no function may have a longer timeout
    # than task jobs (the sweep uses the default, which is the same).
    lease_s = settings.task_job_timeout_s + 5

    async def startup(ctx: dict[str, Any]) -> None:
        services = await Services.start(settings)
        ctx["services"] = services
        ctx["runtime"] = TaskRuntime(
            db=services.db,
            catalog=services.catalog,
            providers=services.providers,
            storage=services.storage,
            lease_s=lease_s,
            poll_min_s=settings.upstream_poll_min_s,
            poll_max_s=settings.upstream_poll_max_s,
            slots=services.request_limits.slots,
        )
        log.info("upstream providers configured: %s", ", ".join(services.providers.configured_names()))
        ctx["webhooks"] = WebhookWorker.start(services, settings, lease_s=lease_s)
        ctx["metrics_flusher"] = flusher = MetricsFlusher(services.redis, settings.operating.metrics_flush_s)
        flusher.start()
        log.info(
            "worker ready: max_jobs=%d poll=%.0f ms",
            settings.worker_max_jobs,
            settings.worker_poll_delay_s * 1000,
        )

    async def shutdown(ctx: dict[str, Any]) -> None:
        flusher = ctx.get("metrics_flusher")
        if flusher is not None:
            await flusher.close()
        webhooks = ctx.get("webhooks")
        if webhooks is not None:
            await webhooks.close()
        services = ctx.get("services")
        if services is not None:
            await services.close()

    return {
        "functions": [
            func(
                _job(run_task),
                name=RUN_TASK,
                timeout=settings.task_job_timeout_s,
                max_tries=settings.task_max_tries,
                keep_result=0,
            ),
            func(
                _job(cancel_upstream_job),
                name=CANCEL_UPSTREAM,
                timeout=settings.task_job_timeout_s,
                max_tries=3,
                keep_result=0,
            ),
            # webhooks: one job per delivery attempt; the default timeout (task_job_timeout_s)
            func(_job(deliver_webhook), name=DELIVER_WEBHOOK, max_tries=5, keep_result=0),
            # billing: one job per Stripe event
            func(_job(process_stripe_event), name=PROCESS_STRIPE_EVENT, max_tries=20, keep_result=0),
        ],
        "cron_jobs": [
            cron(_job(sweep), second=SWEEP_SECONDS, run_at_startup=True, unique=True, keep_result=0),
            cron(_job(webhook_sweep), second=SWEEP_SECONDS, run_at_startup=True, unique=True, keep_result=0),
            cron(_job(billing_sweep), second=BILLING_SWEEP_SECONDS, unique=True, keep_result=0),
            cron(_job(housekeeping), minute=HOUSEKEEPING_MINUTES, second=23, unique=True, keep_result=0),
        ],
        "on_startup": startup,
        "on_shutdown": shutdown,
        "redis_settings": redis_settings(redis_url),
        "max_jobs": settings.worker_max_jobs,
        "poll_delay": settings.worker_poll_delay_s,
        "job_timeout": settings.task_job_timeout_s,
        "keep_result": 0,
        # the arq health check (and our per-process heartbeat) every WORKER_HEARTBEAT_S (<= 60 s);
        # on SIGTERM, stop taking jobs and give the running ones WORKER_SHUTDOWN_GRACE_S to finish, then
        # cancel them: a cancelled task job hands its task back (lease released, job re-queued by arq).
        "health_check_interval": settings.operating.worker_heartbeat_s,
        "job_completion_wait": settings.operating.worker_shutdown_grace_s,
        "allow_abort_jobs": False,
        "handle_signals": True,
    }


class ConduitWorker(Worker):
    _stopping = False

    async def record_health(self) -> None:
        due = (time.time() - self._last_health_check) >= self.health_check_interval
        await super().record_health()
        if due:  # this process's own liveness record (``conduit workers``)
            await write_heartbeat(self.pool, self, ttl_s=self.health_check_interval * 2 + 5)

    async def _poll_iteration(self) -> None:
        if self._stopping:  # leave the polling loop between two iterations, never inside a Redis pipeline
            raise asyncio.CancelledError
        await super()._poll_iteration()

    async def close(self) -> None:
        # arq's own close() calls redis-py's deprecated close(); this is the same sequence with aclose().
        if not self._handle_signals:
            # Stopped in-process (tests, embedding): let the polling loop finish its iteration first. Cancelled
            # in the middle of one, it can leave a pipeline mid-WATCH holding a connection (a ResourceWarning).
            main = self.main_task
            if main is not None and not main.done() and main is not asyncio.current_task():
                self._stopping = True
                await asyncio.wait({main}, timeout=10)
            self.handle_sig(signal.SIGUSR1)
        if not self._pool:
            return
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        await self.pool.delete(self.health_check_key)
        await delete_heartbeat(self.pool)
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        await self.pool.aclose(close_connection_pool=True)
        self._pool = None


def create_worker(settings: Settings, **overrides: Any) -> ConduitWorker:
    return ConduitWorker(**{**worker_kwargs(settings), **overrides})
