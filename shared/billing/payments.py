"""What happens to an order (and the ledger) when Stripe reports a payment, a closed checkout or a refund.

Each function runs inside the caller's transaction with the order row locked, so concurrent deliveries of
different events for the same order are applied one after the other. They are written so that the result
does not depend on how many times, or in which order, the events arrive:

* a payment grants the pack's credits once (ledger idempotency key ``purchase:<order id>``), whatever
  the order's status was; money that was taken always buys the credits;
* closing a checkout (expired, payment failed) only affects an order that is still ``pending``, so a late
  ``expired`` never undoes a payment;
* a refund made outside Conduit (the Stripe dashboard) revokes the unused credits of the order's lot, at
  most once per new refunded amount, and never what was already spent or is on hold.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

from shared import ledger
from shared.billing.orders import fetch_order
from shared.infra.db import Connection, Record

log = logging.getLogger(__name__)


async def apply_payment(
    conn: Connection,
    order: Record,
    *,
    session_id: str | None,
    payment_intent: str | None,
    amount_paid: int | None,
    currency: str | None,
) -> bool:
    """Mark the (locked) order paid and grant its credits as a purchase lot. False if it was paid before."""
    order_id = order["id"]
    if order["lot_id"] is not None:
        await _remember_payment_ids(conn, order_id, session_id, payment_intent)
        return False
    if currency is not None and currency.lower() != order["currency"]:
        log.warning("order %s: paid in %s but priced in %s", order_id, currency, order["currency"])
    expires_at = None
    if order["validity_days"] is not None:
        expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(days=order["validity_days"])
    key = f"purchase:{order_id}"
    lot_id = await ledger.grant(
        conn,
        account_id=order["account_id"],
        amount=order["credits"],
        source="purchase",
        idempotency_key=key,
        reference=f"order:{order_id}",
        expires_at=expires_at,
        description=f"{order['product_name']} (order {order_id})",
    )
    if lot_id is None:  # granted before, but the order was not updated: take the lot that grant made
        lot_id = await ledger.granted_lot(conn, key)
    await conn.execute(
        """
        UPDATE billing_orders
        SET status = CASE WHEN status IN ('pending', 'failed', 'expired') THEN 'paid' ELSE status END,
            lot_id = $2, paid_at = now(), credits_granted = credits, amount_paid = COALESCE($3, amount),
            checkout_session_id = COALESCE(checkout_session_id, $4),
            payment_intent_id = COALESCE(payment_intent_id, $5),
            failure_reason = NULL, closed_at = NULL, updated_at = now()
        WHERE id = $1
        """,
        order_id,
        lot_id,
        amount_paid,
        session_id,
        payment_intent,
    )
    log.info("order %s paid: %s credits granted", order_id, order["credits"])
    return True


async def apply_session_payment(conn: Connection, order: Record, session: dict[str, Any],
                                payment_intent: str | None = None) -> bool:  # fmt: skip
    """``apply_payment`` with the details of a paid Checkout Session (an event's or one fetched from Stripe)."""
    amount = session.get("amount_total")
    currency = session.get("currency")
    return await apply_payment(
        conn,
        order,
        session_id=session.get("id"),
        payment_intent=payment_intent or session.get("payment_intent"),
        amount_paid=amount if isinstance(amount, int) and not isinstance(amount, bool) else None,
        currency=currency if isinstance(currency, str) else None,
    )


def session_is_paid(session: dict[str, Any]) -> bool:
    return session.get("payment_status") in ("paid", "no_payment_required")


async def note_checkout(conn: Connection, order: Record, *, session_id: str | None, payment_intent: str | None) -> None:
    """A completed checkout whose payment is still processing (e.g. a bank debit): remember its ids."""
    await _remember_payment_ids(conn, order["id"], session_id, payment_intent)


async def close_checkout(conn: Connection, order: Record, *, status: str, reason: str) -> bool:
    """pending -> expired | failed. A paid (or already closed) order is left as it is."""
    assert status in ("expired", "failed")
    closed = await conn.fetchval(
        """
        UPDATE billing_orders SET status = $2, failure_reason = $3, closed_at = now(), updated_at = now()
        WHERE id = $1 AND status = 'pending'
        RETURNING id
        """,
        order["id"],
        status,
        reason,
    )
    return closed is not None


async def apply_outside_refund(conn: Connection, order: Record, *, charge_amount_refunded: int) -> int:
    """Stripe reports ``charge_amount_refunded`` (cumulative) refunded on the order's payment. What exceeds
    the refunds Conduit itself asked for was refunded outside Conduit: revoke the lot's unused credits.
    Returns the micro-credits revoked."""
    if order["lot_id"] is None:
        return 0
    ours = await conn.fetchval(
        """
        SELECT COALESCE(SUM(amount), 0) FROM billing_refunds
        WHERE order_id = $1 AND status IN ('pending', 'succeeded')
        """,
        order["id"],
    )
    external = max(order["amount_refunded_external"], charge_amount_refunded - ours)
    new_external = external - order["amount_refunded_external"]
    if new_external <= 0:
        return 0  # the echo of a refund we asked for, or an event we have seen
    unused = await ledger.lot_unused(conn, order["lot_id"])
    revoked = 0
    if unused > 0:
        revoked = await ledger.take_back(
            conn,
            lot_id=order["lot_id"],
            amount=unused,
            kind="revoke",
            idempotency_key=f"revoke:{order['id']}:{external}",
            description=f"refunded outside Conduit (order {order['id']})",
        )
    await conn.execute(
        """
        UPDATE billing_orders
        SET amount_refunded_external = $2, amount_refunded = amount_refunded + $3,
            credits_revoked = credits_revoked + $4,
            status = CASE WHEN amount_refunded + $3 >= amount_paid THEN 'refunded' ELSE 'partially_refunded' END,
            updated_at = now()
        WHERE id = $1
        """,
        order["id"],
        external,
        new_external,
        revoked,
    )
    log.info("order %s: %d refunded outside Conduit, %d micro-credits revoked", order["id"], new_external, revoked)
    return revoked


async def lock_order(conn: Connection, order_id: uuid.UUID) -> Record | None:
    return await fetch_order(conn, order_id, lock=True)


async def _remember_payment_ids(
    conn: Connection, order_id: uuid.UUID, session_id: str | None, payment_intent: str | None
) -> None:
    await conn.execute(
        """
        UPDATE billing_orders
        SET checkout_session_id = COALESCE(checkout_session_id, $2),
            payment_intent_id = COALESCE(payment_intent_id, $3), updated_at = now()
        WHERE id = $1 AND (checkout_session_id IS NULL OR payment_intent_id IS NULL)
        """,
        order_id,
        session_id,
        payment_intent,
    )
