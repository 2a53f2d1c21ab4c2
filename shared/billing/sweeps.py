"""Billing repairs, run by the worker's billing sweep (safe to run from every worker at once).

* events stored but never processed (their job was lost, e.g. Redis restarted empty) are enqueued again;
* refunds left ``pending`` (Stripe was unreachable) are sent again with the same idempotency key;
* checkouts still ``pending`` after their Checkout Session must have ended (Stripe's sessions last at
  most 24 hours) are settled from the session itself, in case their webhook events never arrived.
"""

from __future__ import annotations

import logging
import uuid

from shared.billing import payments
from shared.billing.refunds import send_refund
from shared.billing.stripe_gateway import StripeGateway, StripeRefused, StripeUnavailable
from shared.infra import jobs
from shared.infra.db import Database
from shared.infra.queue import JobQueue

log = logging.getLogger(__name__)

STALE_CHECKOUT_S = 25 * 3600


async def requeue_events(db: Database, queue: JobQueue, *, older_than_s: float = 60, limit: int = 500) -> int:
    rows = await db.fetch(
        """
        SELECT id FROM stripe_events
        WHERE status = 'pending' AND received_at < now() - make_interval(secs => $1)
        ORDER BY received_at LIMIT $2
        """,
        float(older_than_s),
        limit,
    )
    for row in rows:
        await queue.enqueue(jobs.process_stripe_event(row["id"]))
    if rows:
        log.info("billing sweep: re-enqueued %d Stripe event(s)", len(rows))
    return len(rows)


async def retry_refunds(db: Database, gateway: StripeGateway, *, older_than_s: float = 60, limit: int = 100) -> int:
    if not gateway.configured:
        return 0
    rows = await db.fetch(
        """
        SELECT id FROM billing_refunds
        WHERE status = 'pending' AND updated_at < now() - make_interval(secs => $1)
        ORDER BY updated_at LIMIT $2
        """,
        float(older_than_s),
        limit,
    )
    settled = 0
    for row in rows:
        if await send_refund(db, gateway, row["id"]) != "pending":
            settled += 1
    return settled


async def settle_stale_checkouts(
    db: Database, gateway: StripeGateway, *, older_than_s: float = STALE_CHECKOUT_S, limit: int = 100
) -> int:
    """Ask Stripe what became of checkouts that are still pending long after their session ended."""
    if not gateway.configured:
        return 0
    rows = await db.fetch(
        """
        SELECT id, checkout_session_id FROM billing_orders
        WHERE status = 'pending' AND payment_intent_id IS NULL AND created_at < now() - make_interval(secs => $1)
        ORDER BY created_at LIMIT $2
        """,
        float(older_than_s),
        limit,
    )
    settled = 0
    for row in rows:
        try:
            settled += await _settle(db, gateway, row["id"], row["checkout_session_id"])
        except StripeUnavailable:
            return settled  # try again on the next sweep
    return settled


async def _settle(db: Database, gateway: StripeGateway, order_id: uuid.UUID, session_id: str | None) -> int:
    session = None
    if session_id is not None:
        try:
            session = await gateway.retrieve_checkout_session(session_id)
            if session.get("status") == "open":
                session = await gateway.expire_checkout_session(session_id)
        except StripeRefused as exc:
            log.warning("order %s: checkout session %s: %s", order_id, session_id, exc.message)
            session = None
    async with db.transaction() as conn:
        order = await payments.lock_order(conn, order_id)
        if order is None or order["status"] != "pending":
            return 0
        if session is not None and payments.session_is_paid(session):
            await payments.apply_session_payment(conn, order, session)
        elif session is not None and session.get("status") == "complete":
            # Paid by a method that is still processing: its async_payment_* event will settle the order.
            await payments.note_checkout(conn, order, session_id=session.get("id"),
                                         payment_intent=session.get("payment_intent"))  # fmt: skip
            return 0
        else:
            reason = "the checkout expired unpaid" if session is not None else "the checkout could not be found"
            await payments.close_checkout(conn, order, status="expired", reason=reason)
    return 1


async def run_billing_sweep(db: Database, queue: JobQueue, gateway: StripeGateway) -> dict[str, int]:
    return {
        "events_requeued": await requeue_events(db, queue),
        "refunds_settled": await retry_refunds(db, gateway),
        "checkouts_settled": await settle_stale_checkouts(db, gateway),
    }
