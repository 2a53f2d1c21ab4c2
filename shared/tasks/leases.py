"""Running tasks' leases: kept alive by the worker that runs them, taken over promptly when it dies.

A claim (``lifecycle.claim``) gives the run a lease of ``WORKER_DEATH_DETECT_S`` x 2/3 and a fencing token, the
task's ``attempts`` after the claim. While the run lasts, its worker renews the leases of all its running tasks
every third of ``WORKER_DEATH_DETECT_S``, in one statement (``LeaseKeeper.renew``). When the worker dies (SIGKILL,
a lost machine, a partition from PostgreSQL) the renewals stop and the lease lapses within the detection time;
``take_over_lapsed`` (every worker looks a few times per detection period) hands the task's job to another
worker at once: arq would otherwise keep the dead worker's job "in progress" until the job timeout (+10 s).

The taker-over claims the task again, which bumps ``attempts``: every write of the old run (upstream job saved,
progress, terminal transition with its settlement) names its own token and changes nothing once it is stale, so
a worker that was presumed dead and comes back cannot settle. A run whose worker cannot renew its leases stops
itself before they can lapse (``LeaseKeeper.check``), so the same upstream call never runs twice at once; an
upstream job already created (its id is saved before the first poll) is resumed by the taker-over, not re-created.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from arq.constants import in_progress_key_prefix
from redis.exceptions import RedisError

from shared.infra import jobs
from shared.infra.db import Database
from shared.infra.db.lost import is_lost_connection
from shared.infra.queue import JobQueue
from shared.tasks import lifecycle
from shared.tasks.records import TaskRecord

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Run:
    generation: int
    runner: asyncio.Task[object] | None
    claimed: float  # when its claim gave it a fresh lease (monotonic)


@dataclass(slots=True)
class LeaseKeeper:
    """The leases of the tasks one worker process is running."""

    db: Database
    lease_s: float
    renew_s: float
    runs: dict[uuid.UUID, _Run] = field(default_factory=dict)
    last_renewed: float = field(default_factory=time.monotonic)  # the last renewal that reached the database
    # Told when the database stops answering the renewals (False) and when it answers again (True): a worker cut
    # off from PostgreSQL stops taking jobs it could not claim, so that the workers that can take them.
    on_database: Callable[[bool], None] | None = None
    database_reachable: bool = True

    @contextlib.contextmanager
    def holding(self, task_id: uuid.UUID, generation: int) -> Iterator[None]:
        """While the block runs, the task's lease (of the claim ``generation``) is renewed."""
        self.runs[task_id] = _Run(generation, asyncio.current_task(), time.monotonic())
        try:
            yield
        finally:
            run = self.runs.get(task_id)
            if run is not None and run.generation == generation:
                del self.runs[task_id]

    async def renew(self) -> int:
        """Extend every running task's lease, in one statement. A lease released meanwhile (the run handed its
        task to a later poll) or a claim taken over by another worker is left alone, and so is a task another
        transaction is changing now (completing it, say): locking many rows in one statement must not wait on, or
        deadlock with, those; the next renewal comes well before the lease lapses. Returns how many were renewed."""
        if not self.runs:  # nothing to renew: the round trip still tells whether the database answers
            started = time.monotonic()
            await self.db.execute("SELECT 1")
            self.last_renewed = started
            return 0
        ids, generations = zip(*((task_id, run.generation) for task_id, run in self.runs.items()), strict=True)
        started = time.monotonic()
        status = await self.db.execute(
            """
            UPDATE tasks t SET lease_expires_at = now() + make_interval(secs => $3)
            FROM (
                SELECT mine.id FROM tasks mine JOIN unnest($1::uuid[], $2::int[]) AS r(id, generation)
                    ON mine.id = r.id AND mine.attempts = r.generation
                WHERE mine.status = 'running' AND mine.lease_expires_at IS NOT NULL
                FOR NO KEY UPDATE OF mine SKIP LOCKED
            ) AS renewed
            WHERE t.id = renewed.id
            """,
            list(ids),
            list(generations),
            float(self.lease_s),
        )
        self.last_renewed = started
        return int(status.split()[-1])

    def check(self) -> int:
        """Stop the runs whose leases may have lapsed (no renewal reached the database for most of a lease):
        another worker may take their tasks over now, and must not find the same upstream call still running.
        Their jobs hand the tasks back (``worker.jobs.tasks``). Returns how many were stopped."""
        now = time.monotonic()
        stopped = 0
        for task_id, run in list(self.runs.items()):
            if now - max(self.last_renewed, run.claimed) < self.lease_s * 0.8:
                continue
            if run.runner is not None and not run.runner.done():
                log.warning("task %s: its lease could not be renewed; stopping the run", task_id)
                run.runner.cancel()
                stopped += 1
            del self.runs[task_id]
        return stopped

    def _reachable(self, answered: bool) -> None:
        if answered != self.database_reachable:
            self.database_reachable = answered
            if answered:
                log.warning("the database answers again: taking jobs again")
            else:
                log.warning("the database does not answer: taking no new jobs until it does")
            if self.on_database is not None:
                self.on_database(answered)

    async def keep(self, queue: JobQueue) -> None:
        """The worker's loop: renew every ``renew_s``, look for lapsed leases of other workers twice as often.
        Neither is waited for beyond ``renew_s``, nor cancelled (see ``answered_within``): a partition holds a
        statement for as long as it lasts, and the loop must go on to notice it and stop the runs whose leases it
        cannot renew."""
        tick_s = self.renew_s / 2
        renewal: asyncio.Task[int] | None = None
        looking: asyncio.Task[int] | None = None
        renew_due = renew_began = 0.0
        try:
            while True:
                now = time.monotonic()
                if renewal is None and now >= renew_due:
                    renewal, renew_began = asyncio.create_task(self.renew()), now
                if renewal is not None:
                    if not renewal.done() and (left_s := renew_began + self.renew_s - now) > 0:
                        await asyncio.wait({renewal}, timeout=left_s)
                    if not renewal.done():  # left running: a later tick takes its answer
                        self._reachable(False)
                    else:
                        failed = None if renewal.cancelled() else renewal.exception()
                        if failed is None:
                            renew_due = renew_began + self.renew_s
                        else:
                            log.warning("could not renew the leases of running tasks: %r", failed)
                        # any answer of the database's own (an error too) says it is reachable
                        self._reachable(failed is None or not is_lost_connection(failed))
                        renewal = None
                    self.check()
                if looking is None or looking.done():  # the next tick (or the sweep) tries again after a failure
                    looking = asyncio.create_task(take_over_lapsed(self.db, queue))
                    looking.add_done_callback(_log_failed_look)
                await asyncio.sleep(tick_s)
        finally:  # the worker stops: what is still waiting for the database is of no use any more
            for waiting in (renewal, looking):
                if waiting is not None:
                    waiting.cancel()


def _log_failed_look(looking: asyncio.Task[int]) -> None:
    if not looking.cancelled() and (exc := looking.exception()) is not None:
        log.warning("could not look for lapsed task leases: %r", exc)


_ABANDONED: set[asyncio.Task[Any]] = set()  # statements left to end on their own (kept referenced until they do)


async def answered_within(statement: asyncio.Task[Any], timeout_s: float) -> bool:
    """Wait at most ``timeout_s`` for a database statement run as a task. Not answered in time, it is not
    cancelled but left to end on its own: asyncpg cancels a statement by reaching the server, and gives its
    connection back to the pool only after that, so under a partition a cancellation waits as long as the
    partition lasts. False: not answered (the statement may still commit later)."""
    done, _ = await asyncio.wait({statement}, timeout=timeout_s)
    if done:
        return True
    _ABANDONED.add(statement)
    statement.add_done_callback(_forget)
    return False


def _forget(statement: asyncio.Task[Any]) -> None:
    _ABANDONED.discard(statement)
    if not statement.cancelled():
        statement.exception()  # retrieved: an abandoned statement's failure is expected, not worth a report


@contextlib.asynccontextmanager
async def running(db: Database, keeper: LeaseKeeper | None, task: TaskRecord) -> AsyncIterator[None]:
    """The run of a claimed task: its lease renewed by ``keeper`` while it lasts. A run that is stopped (the worker
    shuts down, or could not renew its leases) hands the task back at once rather than after the lease, unless
    another run took it over meanwhile; a run that already settled left it terminal, so nothing changes then."""
    try:
        with keeper.holding(task.id, task.attempts) if keeper is not None else contextlib.nullcontext():
            yield
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await lifecycle.release_lease(db, task.id, generation=task.attempts)
        raise


async def take_over_lapsed(db: Database, queue: JobQueue, *, limit: int = 500) -> int:
    """Hand the running tasks whose lease lapsed (their worker died) to the workers now: their arq jobs are no
    longer held "in progress" by the dead worker, and are enqueued again if they vanished. Safe from any number of
    workers at once: the claim decides which run goes on. Returns how many tasks were handed over."""
    rows = await db.fetch(
        """
        SELECT id, batch_work FROM tasks
        WHERE status = 'running' AND lease_expires_at < now() AND deadline_at > now()
        ORDER BY lease_expires_at
        LIMIT $1
        """,
        limit,
    )
    for row in rows:
        job = jobs.run_task(row["id"], batch_work=row["batch_work"])  # batch work stays on the batch queue
        try:
            await queue.redis.delete(in_progress_key_prefix + job.job_id)
            await queue.enqueue(job)
        except (RedisError, OSError) as exc:
            log.warning("task %s: could not hand its job over (the next look will): %s", row["id"], exc)
            continue
    if rows:
        log.info("handed over %d task(s) whose worker stopped renewing their lease", len(rows))
    return len(rows)
