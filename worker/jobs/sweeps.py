"""Periodic sweeps (arq cron, unique per tick across workers)."""

from __future__ import annotations

from shared.compat.billing import void_abandoned_request_holds
from shared.ledger import expire_lots
from shared.tasks.sweeps import fail_overdue, requeue_orphans
from worker.context import WorkerContext

ABANDONED_MARGIN_S = 600.0  # a request's hold outlives its longest possible run by this much before it is voided


async def sweep(ctx: WorkerContext) -> dict[str, int]:
    services = ctx["services"]
    failed = await fail_overdue(services.db, redis=services.redis, slots=services.request_limits.slots)
    requeued = await requeue_orphans(services.db, services.redis)
    async with services.db.transaction() as conn:
        expired = await expire_lots(conn)
    slots = await services.request_limits.slots.repair(services.db)  # rate limits (issue 8)
    # OpenAI-compatible requests (issue 4): holds left pending by an API process that died mid-request
    longest = max((model.max_runtime_s for model in services.catalog if model.kind == "text"), default=600)
    abandoned = await void_abandoned_request_holds(services.db, older_than_s=longest + ABANDONED_MARGIN_S)
    return {"failed": failed, "requeued": requeued, "expired_micro_credits": expired, **slots,
            "abandoned_request_holds": abandoned}  # fmt: skip
