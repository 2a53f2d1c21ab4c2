"""Billing jobs: one Stripe event (ids in), and the billing sweep (arq cron)."""

from __future__ import annotations

import uuid

from arq import Retry

from shared.billing.events import process_event
from shared.billing.stripe_gateway import StripeUnavailable
from shared.billing.sweeps import run_billing_sweep
from shared.infra.errors import BillingUnavailable
from worker.context import WorkerContext


async def process_stripe_event(ctx: WorkerContext, event_row_id: str) -> str:
    services = ctx["services"]
    try:
        return await process_event(services.db, services.billing.stripe, uuid.UUID(event_row_id))
    except (StripeUnavailable, BillingUnavailable):
        # Stripe down, or this worker has no Stripe key: try again later (the sweep takes over after max_tries).
        raise Retry(defer=min(60, 5 * ctx["job_try"])) from None


async def billing_sweep(ctx: WorkerContext) -> dict[str, int]:
    services = ctx["services"]
    return await run_billing_sweep(services.db, services.queue, services.billing.stripe)
