"""Periodic sweeps (arq cron, unique per tick across workers)."""

from __future__ import annotations

from shared.ledger import expire_lots
from shared.tasks.sweeps import fail_overdue, requeue_orphans
from worker.context import WorkerContext


async def sweep(ctx: WorkerContext) -> dict[str, int]:
    services = ctx["services"]
    failed = await fail_overdue(services.db, redis=services.redis)
    requeued = await requeue_orphans(services.db, services.redis)
    async with services.db.transaction() as conn:
        expired = await expire_lots(conn)
    return {"failed": failed, "requeued": requeued, "expired_micro_credits": expired}
