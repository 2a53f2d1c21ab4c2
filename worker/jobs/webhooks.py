"""Webhook jobs: one delivery attempt (ids in, arq's Retry when it came early) and the webhook sweep."""

from __future__ import annotations

import uuid

from arq import Retry

from worker.context import WorkerContext


async def deliver_webhook(ctx: WorkerContext, delivery_id: str) -> None:
    delay = await ctx["webhooks"].deliver(uuid.UUID(delivery_id))
    if delay is not None:
        raise Retry(defer=delay)


async def webhook_sweep(ctx: WorkerContext) -> dict[str, int]:
    return await ctx["webhooks"].sweep()
