"""One worker process: its services, two arq ``Worker``s running the jobs of ``worker.main`` (one on the
interactive queue, one on the batch queue, each with its own job limit), and its shutdown.

arq is driven through its public API: the ``Worker`` constructor (given the services' Redis pool and the job
context, and no signal handlers of its own), ``Worker.main()`` (the polling loop) and the worker's public
attributes (``allow_pick_jobs``, ``burst`` / ``max_burst_jobs``, ``tasks``, the job counters,
``health_check_key``). What arq's own runner would otherwise do is done here:

* signals (``run``): SIGTERM or SIGINT stop the process with ``WORKER_SHUTDOWN_GRACE_S`` of grace;
* stopping (``stop``): no new job is taken; the running jobs get the grace period to finish; then the polling
  loop is ended between two of its iterations (arq's burst mode with no job left to start makes ``main()``
  return) while the jobs still running are cancelled (a cancelled task job hands its task back: its lease is
  dropped and arq re-queues its job). The polling loop is never cancelled itself: cancelled inside an
  iteration, it can leave a Redis pipeline holding a connection. Then the services close, draining the
  process's background tasks (the heartbeat loop deletes the liveness record as it ends);
* the database out of reach (``LeaseKeeper``'s renewals fail): no new job is taken until it answers again;
* liveness: the heartbeat (``worker.heartbeat``) and the metrics flusher are background loops of the
  services; arq refreshes its own health-check key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from arq.worker import Worker
from redis.exceptions import RedisError

from shared.infra import tracing
from shared.infra.metrics.store import flush_periodically
from shared.services import Services
from shared.settings import Settings
from shared.tasks.claims import TaskClaims
from shared.tasks.completions import TaskCompletions
from shared.tasks.execution import TaskRuntime
from shared.tasks.leases import LeaseKeeper
from shared.tasks.upstream import SubmittedJobs
from shared.webhooks.dispatch import WebhookWorker
from worker.arq_worker import ConduitWorker
from worker.heartbeat import beat
from worker.main import batch_worker_settings, worker_settings

log = logging.getLogger(__name__)

STOP_POLL_S = 0.05  # while the polling loop ends, how often jobs it started meanwhile are looked for


@dataclass(frozen=True, slots=True)
class RunningWorker:
    services: Services
    worker: Worker  # arq's, on the interactive queue
    webhooks: WebhookWorker
    polling: asyncio.Task[None]  # arq's polling loop, ``Worker.main()``
    batch: Worker  # arq's, on the batch queue (``worker.main.batch_worker_settings``)
    batch_polling: asyncio.Task[None]

    @property
    def pollers(self) -> tuple[tuple[Worker, asyncio.Task[None]], ...]:
        return (self.worker, self.polling), (self.batch, self.batch_polling)


class WorkerProcess:
    def __init__(self, settings: Settings, **overrides: Any) -> None:
        """``overrides``: arq ``Worker`` arguments that replace ``worker.main.worker_settings`` (tests)."""
        self.settings = settings
        self.overrides = overrides
        self.running: RunningWorker | None = None  # from ``start`` to ``stop``

    async def start(self) -> None:
        settings = self.settings
        # A webhook delivery's lease must end before arq hands its job to another worker (see
        # ``worker.main.job_functions``); a running task's is renewed while it runs (shared.tasks.leases).
        lease_s = settings.task_job_timeout_s + 5
        deployment = settings.deployment
        tracing.start(settings.operating, "worker")
        services = await Services.start(settings)
        try:
            leases = LeaseKeeper(services.db, lease_s=deployment.lease_s, renew_s=deployment.lease_renew_s)
            runtime = TaskRuntime(
                db=services.db,
                catalog=services.catalog,
                providers=services.providers,
                storage=services.storage,
                lease_s=deployment.lease_s,
                leases=leases,
                poll_min_s=settings.upstream_poll_min_s,
                poll_max_s=settings.upstream_poll_max_s,
                slots=services.request_limits.slots,
                events=services.events,
                signer=services.signer,
                moderator=services.moderator,
                completions=TaskCompletions(services.db),
                claims=TaskClaims(services.db, lease_s=deployment.lease_s),
                submitted=SubmittedJobs(services.redis),
            )
            webhooks = WebhookWorker.start(services, settings, lease_s=lease_s)
            context = {"services": services, "runtime": runtime, "webhooks": webhooks}  # worker.context
            worker = ConduitWorker(
                **{**worker_settings(settings), **self.overrides}, redis_pool=services.redis, ctx=context
            )
            batch = ConduitWorker(**batch_worker_settings(settings), redis_pool=services.redis, ctx=context)
        except BaseException:
            await services.close()
            raise
        leases.on_database = self._database_answers
        operating, background = settings.operating, services.background
        background.spawn_loop(flush_periodically(services.redis, operating.metrics_flush_s), name="metrics flusher")
        background.spawn_loop(beat(services.redis, worker, operating.worker_heartbeat_s), name="worker heartbeat")
        background.spawn_loop(leases.keep(services.queue), name="task leases")
        polling = asyncio.get_running_loop().create_task(worker.main(), name="arq polling loop")
        batch_polling = asyncio.get_running_loop().create_task(batch.main(), name="arq batch polling loop")
        self.running = RunningWorker(services, worker, webhooks, polling, batch, batch_polling)
        log.info("upstream providers configured: %s", ", ".join(services.providers.configured_names()))
        log.info("worker ready: max_jobs=%d poll=%.0f ms", worker.max_jobs, worker.poll_delay_s * 1000)

    def _database_answers(self, answered: bool) -> None:
        """A worker that cannot reach PostgreSQL takes no job (it could not claim it; another worker can), and
        takes jobs again once the database answers. A stopping worker takes none either way."""
        if self.running is not None:
            for worker, _ in self.running.pollers:
                worker.allow_pick_jobs = answered

    async def run(self, on_started: Callable[[], None] | None = None) -> int:
        """Start (then call ``on_started``), work until SIGTERM or SIGINT, then stop with the grace period. Returns
        the exit status: 1 when the polling loop failed (Redis gone for good, ...), which stops the process at
        once."""
        await self.start()
        if on_started is not None:
            on_started()
        assert self.running is not None
        pollings = {self.running.polling, self.running.batch_polling}
        loop = asyncio.get_running_loop()
        stop_requested = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, _on_signal, signum, stop_requested)
        requested = loop.create_task(stop_requested.wait())
        try:
            await asyncio.wait({*pollings, requested}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            requested.cancel()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        failed = any(p.done() and not p.cancelled() and p.exception() is not None for p in pollings)
        await self.stop(grace_s=0 if failed else self.settings.operating.worker_shutdown_grace_s)
        return 1 if failed else 0

    async def stop(self, *, grace_s: float = 0) -> None:
        """Stop taking jobs, give the running ones ``grace_s`` to finish, hand the rest back, close."""
        if self.running is None:
            return
        services, pollers = self.running.services, self.running.pollers
        webhooks, self.running = self.running.webhooks, None
        for worker, _ in pollers:
            worker.allow_pick_jobs = False
        running = sum(not task.done() for worker, _ in pollers for task in worker.tasks.values())
        log.info("worker stopping: %d job(s) running, %.0f s to finish", running, grace_s)
        await asyncio.gather(*(_let_jobs_finish(worker, grace_s) for worker, _ in pollers))
        interrupted = sum(await asyncio.gather(*(_end_polling(worker, polling) for worker, polling in pollers)))
        if interrupted:
            log.warning("worker stopped: %d job(s) interrupted and handed back", interrupted)
        with contextlib.suppress(RedisError, OSError):
            await services.redis.delete(*(worker.health_check_key for worker, _ in pollers))
        await webhooks.close()
        await services.close()


def _on_signal(signum: signal.Signals, stop_requested: asyncio.Event) -> None:
    log.info("worker received %s", signum.name)
    stop_requested.set()


async def _let_jobs_finish(worker: Worker, grace_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_s
    while (running := [task for task in worker.tasks.values() if not task.done()]) and (
        left := deadline - loop.time()
    ) > 0:
        await asyncio.wait(running, timeout=left)


async def _end_polling(worker: Worker, polling: asyncio.Task[None]) -> int:
    """End arq's polling loop between two iterations and cancel the jobs still running (each once: a job
    cancelled again while arq records its outcome would leave that write behind). Returns how many were."""
    worker.burst, worker.max_burst_jobs = True, 0  # the next iteration starts nothing and main() returns
    cancelled: set[asyncio.Task[Any]] = set()

    def cancel_running() -> None:
        for task in list(worker.tasks.values()):
            if task not in cancelled and not task.done():
                task.cancel()
                cancelled.add(task)

    while not polling.done():  # the iteration under way may still start a job: look again until it ends
        cancel_running()
        await asyncio.wait({polling}, timeout=STOP_POLL_S)
    cancel_running()
    # A job cancelled before it began ends the loop with its CancelledError (arq re-raises finished jobs'
    # errors); either way the loop has left Redis alone. Any other error is the loop's own failure.
    if not polling.cancelled() and (exc := polling.exception()) is not None:
        log.error("the arq polling loop failed", exc_info=exc)
    await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
    return len(cancelled)
