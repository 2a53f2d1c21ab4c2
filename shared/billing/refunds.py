"""Refunds of an order's unused credits, asked through the API within ``REFUND_WINDOW`` of the purchase.

1. One transaction, locks order -> account -> lot (the ledger's order after the order row): compute the
   unused credits (the lot's remaining minus what pending holds reserved; spent or held credits are not
   refundable), price them (proportional to what was paid, rounded down to the minor unit), take them out
   of the balance with a 'refund' ledger entry and record the refund as ``pending`` with the exact Stripe
   request. From here on these credits cannot be spent.
2. Ask Stripe for the refund, with an idempotency key derived from the refund id, outside any transaction.
3. Stripe accepted: the refund is ``succeeded`` and the order ``refunded`` / ``partially_refunded``.
   Stripe refused: the refund is ``failed`` and the credits go back to the lot ('adjust' entry).
   Stripe unreachable: the refund stays ``pending``; the sweep repeats the same request (same key), which
   Stripe answers with the same refund, so the money moves at most once.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from shared import ledger
from shared.billing.orders import (
    REFUND_WINDOW,
    REFUNDABLE_STATUSES,
    Order,
    get_order,
    order_not_found,
    refund_amount,
)
from shared.billing.payments import lock_order
from shared.billing.stripe_gateway import StripeGateway, StripeRefused, StripeUnavailable
from shared.infra.db import Database, from_json, to_json
from shared.infra.errors import BillingUnavailable, Conflict, UpstreamFailed
from shared.infra.ids import parse_uuid, uuid7
from shared.ledger.money import Credits
from shared.teams import audit
from shared.teams.audit import AccountActor

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RefundResult:
    status: str  # 'succeeded' or 'pending' (a failed refund raises)
    refund_id: uuid.UUID
    order: Order


async def refund_order(
    db: Database, gateway: StripeGateway, account_id: uuid.UUID, order_id: str, *, actor: AccountActor | None = None
) -> RefundResult:
    """Refund the order's unused credits (asked by ``actor``, recorded in the account's audit trail)."""
    parsed = parse_uuid(order_id)
    if parsed is None:
        raise order_not_found(order_id)
    gateway_ready = gateway.configured
    async with db.transaction() as conn:
        order = await lock_order(conn, parsed)
        if order is None or order["account_id"] != account_id:
            raise order_not_found(order_id)
        if order["status"] not in REFUNDABLE_STATUSES or order["lot_id"] is None or not order["payment_intent_id"]:
            raise Conflict(f"only a paid order can be refunded; this order is {order['status']}",
                           code="order_not_refundable")  # fmt: skip
        if not gateway_ready:
            raise BillingUnavailable("refunds are not available: payments are not configured on this server")
        window_open = await conn.fetchval(
            "SELECT $1::timestamptz + $2::interval > now()", order["paid_at"], REFUND_WINDOW
        )
        if not window_open:
            raise Conflict("the refund period of 7 days after the purchase has ended", code="refund_window_closed")
        unused = await ledger.lot_unused(conn, order["lot_id"])  # locks account -> lot
        if unused <= 0:
            raise Conflict("nothing to refund: every credit of this order is spent, on hold, expired or refunded",
                           code="nothing_to_refund")  # fmt: skip
        pending = await conn.fetchval(
            "SELECT COALESCE(SUM(amount), 0) FROM billing_refunds WHERE order_id = $1 AND status = 'pending'", parsed
        )
        amount = refund_amount(order, unused, pending)
        if amount <= 0:
            raise Conflict(f"nothing to refund: the {Credits(unused)} unused credits are worth less than the "
                           f"smallest {order['currency'].upper()} unit", code="nothing_to_refund")  # fmt: skip
        refund_id = uuid7()
        request = {
            "payment_intent": order["payment_intent_id"],
            "amount": amount,
            "reason": "requested_by_customer",
            "metadata": {"order_id": str(parsed), "refund_id": str(refund_id), "credits": str(Credits(unused))},
        }
        await conn.execute(
            """
            INSERT INTO billing_refunds (id, order_id, account_id, credits, amount, currency, request)
            VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
            """,
            refund_id, parsed, account_id, unused, amount, order["currency"], to_json(request),
        )  # fmt: skip
        await ledger.take_back(
            conn,
            lot_id=order["lot_id"],
            amount=unused,
            kind="refund",
            idempotency_key=f"refund:{refund_id}",
            description=f"refund of unused credits (order {parsed})",
        )
        await conn.execute(
            "UPDATE billing_orders SET credits_refunded = credits_refunded + $2, updated_at = now() WHERE id = $1",
            parsed,
            unused,
        )
        if actor is not None:
            await audit.record(conn, actor, "billing.refund", "order", parsed, after={
                "refund_id": str(refund_id), "credits": Credits(unused), "amount": amount, "currency": order["currency"]
            })  # fmt: skip
    status = await send_refund(db, gateway, refund_id)
    if status == "failed":
        reason = await db.fetchval("SELECT failure_reason FROM billing_refunds WHERE id = $1", refund_id)
        raise UpstreamFailed(f"the payment provider refused the refund ({reason}); your credits were restored",
                             code="refund_failed")  # fmt: skip
    return RefundResult(status=status, refund_id=refund_id, order=await get_order(db, account_id, str(parsed)))


async def send_refund(db: Database, gateway: StripeGateway, refund_id: uuid.UUID) -> str:
    """Send a pending refund to Stripe (again). Returns its status afterwards."""
    row = await db.fetchrow(
        """
        UPDATE billing_refunds SET attempts = attempts + 1, updated_at = now()
        WHERE id = $1 AND status = 'pending'
        RETURNING request
        """,
        refund_id,
    )
    if row is None:
        status: str = await db.fetchval("SELECT status FROM billing_refunds WHERE id = $1", refund_id)
        return status
    try:
        refund = await gateway.create_refund(from_json(row["request"]), idempotency_key=f"conduit-refund-{refund_id}")
    except StripeUnavailable:
        log.warning("refund %s: Stripe unavailable; it stays pending and will be retried", refund_id)
        return "pending"
    except StripeRefused as exc:
        await _fail(db, refund_id, exc.message)
        return "failed"
    if refund.get("status") in ("failed", "canceled"):
        await _fail(db, refund_id, str(refund.get("failure_reason") or "the refund failed"))
        return "failed"
    await _succeed(db, refund_id, str(refund["id"]))
    return "succeeded"


async def _succeed(db: Database, refund_id: uuid.UUID, stripe_refund_id: str) -> None:
    async with db.transaction() as conn:
        order_id = await conn.fetchval("SELECT order_id FROM billing_refunds WHERE id = $1", refund_id)
        await lock_order(conn, order_id)
        amount = await conn.fetchval(
            """
            UPDATE billing_refunds SET status = 'succeeded', stripe_refund_id = $2, updated_at = now()
            WHERE id = $1 AND status = 'pending'
            RETURNING amount
            """,
            refund_id,
            stripe_refund_id,
        )
        if amount is None:
            return
        await conn.execute(
            """
            UPDATE billing_orders
            SET amount_refunded = amount_refunded + $2,
                status = CASE WHEN amount_refunded + $2 >= amount_paid THEN 'refunded' ELSE 'partially_refunded' END,
                updated_at = now()
            WHERE id = $1
            """,
            order_id,
            amount,
        )
    log.info("refund %s succeeded (%s)", refund_id, stripe_refund_id)


async def _fail(db: Database, refund_id: uuid.UUID, reason: str) -> None:
    async with db.transaction() as conn:
        order_id = await conn.fetchval("SELECT order_id FROM billing_refunds WHERE id = $1", refund_id)
        order = await lock_order(conn, order_id)
        assert order is not None
        credits = await conn.fetchval(
            """
            UPDATE billing_refunds SET status = 'failed', failure_reason = $2, updated_at = now()
            WHERE id = $1 AND status = 'pending'
            RETURNING credits
            """,
            refund_id,
            reason[:2000],
        )
        if credits is None:
            return
        await ledger.restore_to_lot(
            conn,
            lot_id=order["lot_id"],
            amount=credits,
            idempotency_key=f"refund-failed:{refund_id}",
            description=f"refund failed, credits restored (order {order_id})",
        )
        await conn.execute(
            "UPDATE billing_orders SET credits_refunded = credits_refunded - $2, updated_at = now() WHERE id = $1",
            order_id,
            credits,
        )
    log.warning("refund %s failed: %s; credits restored", refund_id, reason)
