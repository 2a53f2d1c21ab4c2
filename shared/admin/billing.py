"""Operators on billing: orders and refunds across accounts, Stripe events and their processing, retrying a
failed event, and starting a refund of an order's unused credits (audited)."""

from __future__ import annotations

import logging
from typing import Any

from shared.admin.views import AccountOrder, OrderRefund, RetriedStripeEvent, StripeEvent, from_row
from shared.billing.events import process_event
from shared.billing.orders import order_not_found
from shared.billing.refunds import refund_order
from shared.billing.stripe_gateway import StripeGateway
from shared.infra.db import Database
from shared.infra.errors import Conflict, NotFound
from shared.infra.ids import parse_uuid
from shared.infra.pagination import Page, choice_filter, page_cursor
from shared.staff import Actor, audit

log = logging.getLogger(__name__)


EVENT_STATUSES = ("pending", "processed", "ignored", "failed")


async def list_orders(
    db: Database, *, status: str | None = None, limit: int = 50, after: str | None = None
) -> Page[AccountOrder]:
    """Every account's orders, newest first."""
    cursor = page_cursor(limit, after)
    rows = await db.fetch(
        """
        SELECT o.id, o.account_id, a.email, o.product_name, o.amount, o.currency, o.credits, o.status, o.amount_paid,
               o.amount_refunded, o.credits_refunded, o.created_at, o.paid_at
        FROM billing_orders o JOIN accounts a ON a.id = o.account_id
        WHERE ($1::text IS NULL OR o.status = $1) AND ($2::uuid IS NULL OR o.id < $2)
        ORDER BY o.id DESC LIMIT $3
        """,
        status, cursor, limit + 1,
    )  # fmt: skip
    return Page.of(rows, limit, lambda row: from_row(AccountOrder, row))


async def list_refunds(db: Database, *, limit: int = 50) -> list[dict[str, Any]]:
    rows = await db.fetch(
        """
        SELECT r.id, r.order_id, r.account_id, a.email, r.credits, r.amount, r.currency, r.status, r.failure_reason,
               r.attempts, r.created_at
        FROM billing_refunds r JOIN accounts a ON a.id = r.account_id ORDER BY r.id DESC LIMIT $1
        """,
        limit,
    )
    return [dict(row) for row in rows]


async def list_events(db: Database, *, status: str | None = None, limit: int = 50) -> list[StripeEvent]:
    """Stripe events as received, newest first, with how their processing went."""
    choice_filter(status, EVENT_STATUSES, "status")
    rows = await db.fetch(
        """
        SELECT id, event_id, type, status, attempts, last_error, received_at, processed_at FROM stripe_events
        WHERE ($1::text IS NULL OR status = $1) ORDER BY received_at DESC LIMIT $2
        """,
        status,
        limit,
    )
    return [from_row(StripeEvent, row) for row in rows]


async def retry_event(db: Database, gateway: StripeGateway, event_row_id: str, *, actor: Actor) -> RetriedStripeEvent:
    """Process a failed Stripe event again, now; answers the event as it stands afterwards."""
    parsed = parse_uuid(event_row_id)
    reset = await db.fetchval(
        "UPDATE stripe_events SET status = 'pending', attempts = 0 WHERE id = $1 AND status = 'failed' RETURNING id",
        parsed,
    ) if parsed else None  # fmt: skip
    if reset is None:
        status = await db.fetchval("SELECT status FROM stripe_events WHERE id = $1", parsed) if parsed else None
        if status is None:
            raise NotFound(f"no Stripe event {event_row_id}", code="stripe_event_not_found")
        raise Conflict(f"only a failed event can be retried; this one is {status}", code="stripe_event_not_failed")
    try:
        await process_event(db, gateway, reset)
    except Exception as exc:  # recorded on the event (last_error); the answer shows it
        log.warning("Stripe event %s failed again: %s", reset, exc)
    row = await db.fetchrow(
        "SELECT id, event_id, type, status, attempts, last_error, processed_at FROM stripe_events WHERE id = $1", reset
    )
    assert row is not None  # reset above
    event = RetriedStripeEvent(**{**dict(row), "id": str(row["id"]), "object": "stripe_event"})
    after = {"status": row["status"], "last_error": row["last_error"]}
    await audit.record(db, actor, "billing.event_retry", "stripe_event", row["event_id"], before={"status": "failed"},
                       after=after)  # fmt: skip
    return event


async def start_refund(
    db: Database, gateway: StripeGateway, order_id: str, *, actor: Actor, reason: str
) -> OrderRefund:
    """Refund an order's unused credits on its owner's behalf (the rules of the owner's own refund apply)."""
    reason = audit.check_reason(reason)
    parsed = parse_uuid(order_id)
    account_id = await db.fetchval("SELECT account_id FROM billing_orders WHERE id = $1", parsed) if parsed else None
    if account_id is None:
        raise order_not_found(order_id)
    result = await refund_order(db, gateway, account_id, order_id)
    await audit.record(db, actor, "billing.refund", "order", parsed, reason=reason,
                       after={"refund_id": str(result.refund_id), "status": result.status})  # fmt: skip
    return OrderRefund(object="refund", id=str(result.refund_id), status=result.status, order=result.order)
