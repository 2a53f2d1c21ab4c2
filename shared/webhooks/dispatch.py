"""Getting deliveries onto the queue, worker side.

* ``OutboxListener``: each worker LISTENs on the outbox channel; the notification of a committed
  transaction names its new deliveries, whose jobs are enqueued at once.
* ``process_delivery``: what the delivery job runs; after a failed attempt it enqueues the job of the next
  attempt, deferred to its time (a job never sleeps in its slot).
* ``requeue_due`` (the webhook sweep): enqueues every due delivery that has no live job (the notification
  was missed, Redis restarted empty, a worker died between an attempt and the enqueue of the next) and
  purges old logs.

The listener, the previous attempt and the sweep all name the same job for the same pending attempt
(``shared.infra.jobs.deliver_webhook``), so they never double each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
from redis.exceptions import RedisError

from shared.infra import jobs, tracing
from shared.infra.background import BackgroundTasks
from shared.infra.db import Database
from shared.infra.queue import JobQueue
from shared.services import Services
from shared.settings import Settings
from shared.webhooks.delivery import Clock, WebhookRuntime, deliver, utcnow
from shared.webhooks.outbox import CHANNEL, parse_notification, split_trace

log = logging.getLogger(__name__)

SWEEP_GRACE_S = 10.0  # a due delivery is the sweep's business once it has waited this long for its job
LOG_RETENTION = dt.timedelta(days=30)
USER_AGENT = "Conduit-Webhooks/1.0"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def epoch_ms(when: dt.datetime) -> int:
    """Milliseconds since the epoch, exactly (integer arithmetic; the outbox SQL computes the same floor)."""
    return (when - _EPOCH) // dt.timedelta(milliseconds=1)


async def process_delivery(rt: WebhookRuntime, queue: JobQueue, delivery_id: uuid.UUID) -> float | None:
    """Run the delivery's due attempt. Returns a delay when this job came early and should run again."""
    outcome = await deliver(rt, delivery_id)
    if outcome.not_due_in is not None:
        return outcome.not_due_in
    if outcome.next_attempt_at is not None:
        due_ms, now_ms = epoch_ms(outcome.next_attempt_at), epoch_ms(rt.clock())
        try:
            await queue.enqueue(
                jobs.deliver_webhook(delivery_id, attempts=outcome.attempts, due_ms=due_ms, now_ms=now_ms)
            )
        except (OSError, RedisError) as exc:
            log.warning("could not enqueue the next attempt of delivery %s, the sweep will: %s", delivery_id, exc)
    return None


async def requeue_due(
    db: Database, queue: JobQueue, now: dt.datetime, *, grace_s: float = SWEEP_GRACE_S, limit: int = 500
) -> int:
    """Enqueue the job of every pending delivery that has been due for ``grace_s`` and is not being sent."""
    rows = await db.fetch(
        """
        SELECT id, attempts, next_attempt_at FROM webhook_deliveries
        WHERE status = 'pending' AND next_attempt_at <= $1::timestamptz - make_interval(secs => $2)
          AND (locked_until IS NULL OR locked_until <= $1)
        ORDER BY next_attempt_at
        LIMIT $3
        """,
        now,
        grace_s,
        limit,
    )
    enqueued = 0
    for row in rows:
        job = jobs.deliver_webhook(
            row["id"], attempts=row["attempts"], due_ms=epoch_ms(row["next_attempt_at"]), now_ms=epoch_ms(now)
        )
        if await queue.enqueue(job):
            enqueued += 1
    if enqueued:
        log.info("webhook sweep enqueued %d delivery job(s) that were missing", enqueued)
    return enqueued


async def purge_logs(db: Database, now: dt.datetime, *, older_than: dt.timedelta = LOG_RETENTION) -> int:
    """Delete events (with their deliveries and attempts) older than the retention, unless still pending."""
    status = await db.execute(
        """
        DELETE FROM webhook_events WHERE id IN (
            SELECT e.id FROM webhook_events e
            WHERE e.created_at < $1
              AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status = 'pending')
            LIMIT 1000
        )
        """,
        now - older_than,
    )
    return int(status.split()[-1])


class OutboxListener:
    """LISTENs for committed outbox notifications on a dedicated connection and enqueues their deliveries.

    A loop of the process's background tasks, which also run the enqueues. Reconnects after a lost
    connection; whatever was notified meanwhile is picked up by the sweep."""

    def __init__(
        self,
        database_url: str,
        queue: JobQueue,
        background: BackgroundTasks,
        *,
        clock: Clock = utcnow,
        retry_s: float = 1.0,
    ) -> None:
        self.database_url = database_url
        self.queue = queue
        self.background = background
        self.clock = clock
        self.retry_s = retry_s
        self.listening = asyncio.Event()

    def start(self) -> None:
        self.background.spawn_loop(self._run(), name="webhook outbox listener")

    async def _run(self) -> None:
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self.database_url)
                lost = asyncio.Event()
                conn.add_termination_listener(_setter(lost))
                await conn.add_listener(CHANNEL, self._on_notification)
                self.listening.set()
                await lost.wait()
                log.warning("webhook outbox listener lost its connection; reconnecting")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("webhook outbox listener cannot connect (%s); retrying", exc)
            finally:
                self.listening.clear()
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)
            await asyncio.sleep(self.retry_s)

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        deliveries, trace = split_trace(payload)
        self.background.spawn(self._enqueue(parse_notification(deliveries), trace), name="webhook delivery enqueue")

    async def _enqueue(self, deliveries: list[tuple[uuid.UUID, int]], trace: dict[str, str] | None) -> None:
        now_ms = epoch_ms(self.clock())
        for delivery_id, due_ms in deliveries:
            job = jobs.deliver_webhook(delivery_id, attempts=0, due_ms=due_ms, now_ms=now_ms, trace=trace)
            try:
                await self.queue.enqueue(job)
            except (OSError, RedisError) as exc:
                log.warning("could not enqueue webhook delivery %s, the sweep will: %s", delivery_id, exc)


def _setter(event: asyncio.Event) -> Callable[[object], None]:
    return lambda _: event.set()


@dataclass
class WebhookWorker:
    """The webhook side of a worker process: the delivery runtime and the outbox listener."""

    runtime: WebhookRuntime
    listener: OutboxListener
    queue: JobQueue
    _closed: bool = field(default=False)

    @classmethod
    def start(cls, services: Services, settings: Settings, *, lease_s: float, clock: Clock = utcnow) -> WebhookWorker:
        # The request must end well inside the job's own time limit (TASK_JOB_TIMEOUT_S), which also
        # covers the database writes around it.
        timeout_s = max(1.0, min(settings.webhook_timeout_s, settings.task_job_timeout_s - 5))
        http = services.url_guard.client(timeout_s=timeout_s, user_agent=USER_AGENT)
        tracing.instrument_http(http)  # while tracing: each attempt is a span, and sends its traceparent
        runtime = WebhookRuntime(
            db=services.db,
            signer=services.signer,
            http=http,
            timeout_s=timeout_s,
            lease_s=lease_s,
            clock=clock,
        )
        # LISTEN holds a session: a direct connection, past a transaction pooler (DATABASE_DIRECT_URL)
        listener = OutboxListener(settings.direct_database_url, services.queue, services.background, clock=clock)
        listener.start()
        return cls(runtime=runtime, listener=listener, queue=services.queue)

    async def deliver(self, delivery_id: uuid.UUID) -> float | None:
        return await process_delivery(self.runtime, self.queue, delivery_id)

    async def sweep(self) -> dict[str, int]:
        now = self.runtime.clock()
        requeued = await requeue_due(self.runtime.db, self.queue, now)
        purged = await purge_logs(self.runtime.db, now)
        return {"requeued": requeued, "purged_events": purged}

    async def close(self) -> None:
        """Close the delivery client (the listener is a background loop: it ends when the services close)."""
        if not self._closed:
            self._closed = True
            await self.runtime.http.aclose()
