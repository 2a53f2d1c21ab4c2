"""Stripe webhook deliveries: verify, store once, process in a worker.

The web process verifies ``Stripe-Signature`` on the raw body, stores the event (unique on Stripe's event
id, so a re-delivery stores nothing new) and enqueues a job carrying the stored row's id; it answers at
once. The worker applies the event in one transaction with the event row locked, and marks it processed
there, so an event is applied at most once however often it is delivered or its job re-runs. A delivery
of an event that is stored but not yet processed enqueues it again; the sweep re-enqueues events whose
job was lost.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import msgspec

from shared.billing import payments, receipts
from shared.billing.stripe_gateway import InvalidSignature, StripeGateway, StripeUnavailable
from shared.infra import jobs
from shared.infra.db import Connection, Database, from_json
from shared.infra.errors import BillingUnavailable, InvalidInput
from shared.infra.ids import parse_uuid, uuid7
from shared.infra.queue import JobQueue

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10

CHECKOUT_EVENTS = (
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
)
HANDLED_EVENTS = (*CHECKOUT_EVENTS, "charge.refunded", "charge.succeeded")


class _Envelope(msgspec.Struct):
    id: str
    type: str


async def receive_event(db: Database, queue: JobQueue, gateway: StripeGateway, body: bytes,
                        signature: str | None) -> bool:  # fmt: skip
    """Verify and store one delivery; True if the event is new. Raises ``InvalidInput`` (bad signature or
    body) before anything is stored."""
    try:
        gateway.verify_webhook(body, signature)
    except InvalidSignature as exc:
        raise InvalidInput(f"invalid Stripe-Signature: {exc}", code="invalid_signature",
                           param="Stripe-Signature") from None  # fmt: skip
    try:
        envelope = msgspec.json.decode(body, type=_Envelope)
    except msgspec.DecodeError:
        raise InvalidInput("the body is not a Stripe event", code="invalid_event") from None
    row = await db.fetchrow(
        """
        INSERT INTO stripe_events (id, event_id, type, payload) VALUES ($1, $2, $3, $4::jsonb)
        ON CONFLICT (event_id) DO NOTHING
        RETURNING id, status
        """,
        uuid7(),
        envelope.id,
        envelope.type,
        body.decode(),
    )
    inserted = row is not None
    if row is None:  # delivered before
        row = await db.fetchrow("SELECT id, status FROM stripe_events WHERE event_id = $1", envelope.id)
        assert row is not None
    if row["status"] == "pending":
        try:
            await queue.enqueue(jobs.process_stripe_event(row["id"]))
        except Exception:  # stored: the sweep will enqueue it; Stripe must still get its 2xx
            log.exception("could not enqueue Stripe event %s; the sweep will retry", envelope.id)
    return inserted


async def process_event(db: Database, gateway: StripeGateway, row_id: uuid.UUID) -> str:
    """Apply one stored event. Returns its final status ('processed', 'ignored'), or the status it already had.

    An exception (e.g. Stripe unreachable while looking up a refund's checkout) is recorded on the event
    and re-raised; the event stays pending for a retry (the job's, or the sweep's)."""
    row = await db.fetchrow("SELECT type, payload, status FROM stripe_events WHERE id = $1", row_id)
    if row is None or row["status"] != "pending":
        return row["status"] if row is not None else "missing"
    event: dict[str, Any] = from_json(row["payload"])
    obj = (event.get("data") or {}).get("object") or {}
    try:
        session = await _prefetch(db, gateway, row["type"], obj)
        async with db.transaction() as conn:
            status = await conn.fetchval("SELECT status FROM stripe_events WHERE id = $1 FOR UPDATE", row_id)
            if status != "pending":
                return str(status)
            outcome = await _apply(conn, row["type"], obj, session)
            await conn.execute(
                """
                UPDATE stripe_events SET status = $2, processed_at = now(), attempts = attempts + 1, last_error = NULL
                WHERE id = $1
                """,
                row_id,
                outcome,
            )
        return outcome
    except Exception as exc:
        # Stripe being unreachable (or not configured on this worker yet) is worth waiting out however long
        # it lasts; anything else is a bug or a bad event: it gives up after MAX_ATTEMPTS ('failed', for an
        # operator to look at: ``stripe_events.last_error``).
        await db.execute(
            """
            UPDATE stripe_events
            SET attempts = attempts + 1, last_error = $2,
                status = CASE WHEN $4 AND attempts + 1 >= $3 THEN 'failed' ELSE status END
            WHERE id = $1 AND status = 'pending'
            """,
            row_id,
            f"{type(exc).__name__}: {exc}"[:2000],
            MAX_ATTEMPTS,
            not isinstance(exc, StripeUnavailable | BillingUnavailable),
        )
        raise


async def _prefetch(
    db: Database, gateway: StripeGateway, event_type: str, obj: dict[str, Any]
) -> dict[str, Any] | None:
    """For a refund of a payment Conduit has not matched to an order yet (its checkout events are late or
    lost), ask Stripe which Checkout Session made the payment. Done before the transaction: no locks are
    held across a network call."""
    if event_type != "charge.refunded":
        return None
    payment_intent = obj.get("payment_intent")
    if not isinstance(payment_intent, str) or not payment_intent:
        return None
    known = await db.fetchval("SELECT 1 FROM billing_orders WHERE payment_intent_id = $1", payment_intent)
    if known:
        return None
    return await gateway.find_checkout_session(payment_intent)


async def _apply(conn: Connection, event_type: str, obj: dict[str, Any], session: dict[str, Any] | None) -> str:
    if event_type in CHECKOUT_EVENTS:
        return await _apply_checkout_event(conn, event_type, obj)
    if event_type == "charge.refunded":
        outcome = await _apply_refund_event(conn, obj, session)
        await receipts.note_charge(conn, obj)
        return outcome
    if event_type == "charge.succeeded":
        return "processed" if await receipts.note_charge(conn, obj) else "ignored"
    return "ignored"


def _order_id(session: dict[str, Any]) -> uuid.UUID | None:
    metadata = session.get("metadata") or {}
    raw = session.get("client_reference_id") or metadata.get("order_id")
    return parse_uuid(raw) if isinstance(raw, str) else None


async def _apply_checkout_event(conn: Connection, event_type: str, session: dict[str, Any]) -> str:
    order_id = _order_id(session)
    order = await payments.lock_order(conn, order_id) if order_id is not None else None
    if order is None:
        return "ignored"  # not a Conduit checkout (another integration on the same Stripe account)
    session_id = session.get("id")
    payment_intent = session.get("payment_intent")
    if event_type == "checkout.session.async_payment_succeeded" or (
        event_type == "checkout.session.completed" and payments.session_is_paid(session)
    ):
        await payments.apply_session_payment(conn, order, session)
        await receipts.note_session(conn, order["id"], session)
    elif event_type == "checkout.session.completed":
        await payments.note_checkout(conn, order, session_id=session_id, payment_intent=payment_intent)
    elif event_type == "checkout.session.async_payment_failed":
        await payments.close_checkout(conn, order, status="failed", reason="the payment failed")
    else:  # checkout.session.expired
        await payments.close_checkout(conn, order, status="expired", reason="the checkout expired unpaid")
    return "processed"


async def _apply_refund_event(conn: Connection, charge: dict[str, Any], session: dict[str, Any] | None) -> str:
    payment_intent = charge.get("payment_intent")
    amount_refunded = _int_or_none(charge.get("amount_refunded"))
    if not isinstance(payment_intent, str) or amount_refunded is None:
        return "ignored"
    order_id = await conn.fetchval("SELECT id FROM billing_orders WHERE payment_intent_id = $1", payment_intent)
    if order_id is None and session is not None and payments.session_is_paid(session):
        # Refunded before its checkout events were processed: the payment happened, apply it first.
        session_order = _order_id(session)
        order = await payments.lock_order(conn, session_order) if session_order is not None else None
        if order is not None:
            await payments.apply_session_payment(conn, order, session, payment_intent)
            order_id = order["id"]
    if order_id is None:
        return "ignored"
    order = await payments.lock_order(conn, order_id)
    assert order is not None
    await payments.apply_outside_refund(conn, order, charge_amount_refunded=amount_refunded)
    return "processed"


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
