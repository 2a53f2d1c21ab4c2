"""Orders: starting a Stripe Checkout for a credit pack, and what the API shows of an order.

An order is written (``pending``) before the Checkout Session is created, so a payment can always be
matched to it: its id travels as the session's ``client_reference_id`` and in the metadata. The price and
the credits come from the server's product list, never from the client.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from shared.billing.runtime import Billing
from shared.billing.stripe_gateway import StripeRefused, StripeUnavailable
from shared.infra.db import Connection, Database, Record
from shared.infra.errors import BillingUnavailable, InvalidInput, NotFound, PermissionDenied, UpstreamFailed
from shared.infra.ids import parse_uuid, uuid7
from shared.infra.pagination import Page, page_cursor
from shared.ledger import unused_credits_sql
from shared.ledger.money import Credits

REFUND_WINDOW = dt.timedelta(days=7)
ORDER_STATUSES = ("pending", "paid", "failed", "expired", "refunded", "partially_refunded")
REFUNDABLE_STATUSES = ("paid", "partially_refunded")

ORDER_COLUMNS = """
    o.id, o.account_id, o.product_id, o.product_name, o.amount, o.currency, o.credits, o.validity_days, o.status,
    o.checkout_session_id, o.checkout_url, o.payment_intent_id, o.lot_id, o.amount_paid, o.amount_refunded,
    o.amount_refunded_external, o.credits_granted, o.credits_refunded, o.credits_revoked, o.failure_reason,
    o.created_at, o.updated_at, o.paid_at, o.closed_at, o.stripe_receipt_url, l.expires_at AS credits_expire_at
"""
ORDER_FROM = "billing_orders o LEFT JOIN credit_lots l ON l.id = o.lot_id"


def order_not_found(order_id: object) -> NotFound:
    return NotFound(f"no order {order_id}", code="order_not_found", param="order_id")


class OrderProduct(msgspec.Struct):
    id: str
    name: str


class Refund(msgspec.Struct):
    """A refund of an order's unused credits (``amount`` in minor units of ``currency``)."""

    id: str
    object: Literal["billing.refund"]
    status: str
    credits: Credits
    amount: int
    currency: str
    failure_reason: str | None
    created_at: dt.datetime


class RefundableAmount(msgspec.Struct):
    """What a refund of the order would give back now: the unused credits, and the money for them."""

    credits: Credits
    amount: int


class Order(msgspec.Struct):
    """An order of a credit pack (amounts in minor units of ``currency``); ``refunds`` and ``refundable`` only
    on a single order."""

    id: str
    object: Literal["billing.order"]
    status: str
    product: OrderProduct
    currency: str
    amount: int
    amount_paid: int | None
    amount_refunded: int
    credits: Credits
    credits_granted: Credits
    credits_refunded: Credits
    credits_revoked: Credits
    credits_expire_at: dt.datetime | None
    checkout_url: str | None
    failure_reason: str | None
    created_at: dt.datetime
    paid_at: dt.datetime | None
    refundable_until: dt.datetime | None
    # a paid order's receipt (``shared.billing.receipts``): ours as a PDF, and Stripe's hosted one if any
    receipt_url: str | None
    stripe_receipt_url: str | None
    refunds: list[Refund] | msgspec.UnsetType = msgspec.UNSET
    refundable: RefundableAmount | msgspec.UnsetType = msgspec.UNSET


def public_order(
    row: Record,
    *,
    refunds: list[Record] | None = None,
    refundable: tuple[int, int] | None = None,
) -> Order:
    """The API's view of an order. ``refunds`` and ``refundable`` (credits, amount) only on a single order."""
    paid_at: dt.datetime | None = row["paid_at"]
    return Order(
        id=str(row["id"]),
        object="billing.order",
        status=row["status"],
        product=OrderProduct(id=row["product_id"], name=row["product_name"]),
        currency=row["currency"],
        amount=row["amount"],
        amount_paid=row["amount_paid"],
        amount_refunded=row["amount_refunded"],
        credits=Credits(row["credits"]),
        credits_granted=Credits(row["credits_granted"]),
        credits_refunded=Credits(row["credits_refunded"]),
        credits_revoked=Credits(row["credits_revoked"]),
        credits_expire_at=row["credits_expire_at"],
        checkout_url=row["checkout_url"] if row["status"] == "pending" else None,
        failure_reason=row["failure_reason"],
        created_at=row["created_at"],
        paid_at=paid_at,
        refundable_until=paid_at + REFUND_WINDOW if paid_at is not None else None,
        receipt_url=f"/v1/billing/orders/{row['id']}/receipt.pdf" if paid_at is not None else None,
        stripe_receipt_url=row["stripe_receipt_url"] if paid_at is not None else None,
        refunds=[public_refund(refund) for refund in refunds] if refunds is not None else msgspec.UNSET,
        refundable=(
            RefundableAmount(credits=Credits(refundable[0]), amount=refundable[1])
            if refundable is not None
            else msgspec.UNSET
        ),
    )


def public_refund(row: Record) -> Refund:
    return Refund(
        id=str(row["id"]),
        object="billing.refund",
        status=row["status"],
        credits=Credits(row["credits"]),
        amount=row["amount"],
        currency=row["currency"],
        failure_reason=row["failure_reason"],
        created_at=row["created_at"],
    )


@dataclass(frozen=True, slots=True)
class Checkout:
    url: str
    order: Order


async def start_checkout(db: Database, billing: Billing, *, account_id: uuid.UUID, product_id: str) -> Checkout:
    """Create a pending order for the product and a Stripe Checkout Session for it."""
    product = billing.products.get(product_id)
    if product is None:
        raise InvalidInput(f"unknown product {product_id!r}; see GET /v1/billing/products", code="unknown_product",
                           param="product_id")  # fmt: skip
    if not billing.stripe.configured:
        raise BillingUnavailable("payments are not configured on this server")
    account = await db.fetchrow("SELECT email, status FROM accounts WHERE id = $1", account_id)
    if account is None or account["status"] != "active":
        raise PermissionDenied("this account cannot make purchases; contact support", code="account_not_active")
    order_id = uuid7()
    await db.execute(
        """
        INSERT INTO billing_orders (id, account_id, product_id, product_name, amount, currency, credits, validity_days)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        """,
        order_id, account_id, product.id, product.name, product.price, product.currency, product.credits,
        product.validity_days,
    )  # fmt: skip
    params: dict[str, Any] = {
        "mode": "payment",
        "client_reference_id": str(order_id),
        "metadata": {"order_id": str(order_id), "account_id": str(account_id), "product_id": product.id},
        "payment_intent_data": {"metadata": {"order_id": str(order_id)}},
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": product.currency,
                    "unit_amount": product.price,
                    "product_data": {"name": product.name, **({"description": product.description}
                                                              if product.description else {})},
                },
            }
        ],
        "success_url": _with_order(billing.success_url, order_id),
        "cancel_url": _with_order(billing.cancel_url, order_id),
    }  # fmt: skip
    if account["email"]:
        params["customer_email"] = account["email"]
    try:
        session = await billing.stripe.create_checkout_session(params, idempotency_key=f"conduit-checkout-{order_id}")
    except (StripeUnavailable, StripeRefused) as exc:
        reason = exc.message if isinstance(exc, StripeRefused) else "the payment provider is unavailable"
        await db.execute(
            """
            UPDATE billing_orders SET status = 'failed', failure_reason = $2, closed_at = now(), updated_at = now()
            WHERE id = $1 AND status = 'pending'
            """,
            order_id,
            f"could not start the checkout: {reason}",
        )
        raise UpstreamFailed(f"could not start the payment: {reason}; try again later",
                             code="payment_provider_error") from exc  # fmt: skip
    await db.execute(
        """
        UPDATE billing_orders
        SET checkout_session_id = COALESCE(checkout_session_id, $2), checkout_url = $3, updated_at = now()
        WHERE id = $1
        """,
        order_id,
        session["id"],
        session.get("url"),
    )
    order = await get_order(db, account_id, str(order_id))
    return Checkout(url=str(session.get("url") or ""), order=order)


def _with_order(url: str, order_id: uuid.UUID) -> str:
    """``{ORDER_ID}`` in a configured URL becomes the order id (Stripe fills ``{CHECKOUT_SESSION_ID}``)."""
    if "{ORDER_ID}" in url:
        return url.replace("{ORDER_ID}", str(order_id))
    return f"{url}{'&' if '?' in url else '?'}order_id={order_id}"


async def fetch_order(conn: Connection, order_id: uuid.UUID, *, lock: bool = False) -> Record | None:
    """One order row (with its lot's expiry); ``lock`` takes the row lock (FOR UPDATE OF the order)."""
    suffix = " FOR UPDATE OF o" if lock else ""
    row: Record | None = await conn.fetchrow(f"SELECT {ORDER_COLUMNS} FROM {ORDER_FROM} WHERE o.id = $1{suffix}",
                                             order_id)  # fmt: skip
    return row


async def get_order(db: Database, account_id: uuid.UUID, order_id: str) -> Order:
    parsed = parse_uuid(order_id)
    if parsed is None:
        raise order_not_found(order_id)
    async with db.connection() as conn:
        row = await fetch_order(conn, parsed)
        if row is None or row["account_id"] != account_id:
            raise order_not_found(order_id)
        refunds = await conn.fetch("SELECT * FROM billing_refunds WHERE order_id = $1 ORDER BY id", parsed)
        refundable = await _refundable_now(conn, row)
    return public_order(row, refunds=refunds, refundable=refundable)


async def _refundable_now(conn: Connection, row: Record) -> tuple[int, int]:
    """What ``POST .../refund`` would refund right now: (credits, amount in minor units)."""
    if row["status"] not in REFUNDABLE_STATUSES or row["lot_id"] is None or row["credits_granted"] <= 0:
        return 0, 0
    unused = await conn.fetchval(
        f"""
        SELECT {unused_credits_sql("l")}
        FROM credit_lots l WHERE l.id = $1 AND $2::timestamptz + $3::interval > now()
        """,
        row["lot_id"],
        row["paid_at"],
        REFUND_WINDOW,
    )
    if not unused:
        return 0, 0
    pending = await conn.fetchval(
        "SELECT COALESCE(SUM(amount), 0) FROM billing_refunds WHERE order_id = $1 AND status = 'pending'", row["id"]
    )
    amount = refund_amount(row, unused, pending)
    return (unused, amount) if amount > 0 else (0, 0)


def refund_amount(row: Record, unused: int, pending_refunds: int) -> int:
    """The money for ``unused`` credits of the order: proportional to what was paid, rounded down to the minor
    unit, and never more than what has not been refunded yet."""
    proportional = row["amount_paid"] * unused // row["credits_granted"]
    left = row["amount_paid"] - row["amount_refunded"] - pending_refunds
    return max(0, min(proportional, left))


async def list_orders(
    db: Database, account_id: uuid.UUID, *, limit: int = 20, after: str | None = None, status: str | None = None
) -> Page[Order]:
    """The account's orders, newest first."""
    cursor = page_cursor(limit, after)
    if status is not None and status not in ORDER_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(ORDER_STATUSES)}", param="status")
    rows = await db.fetch(
        f"""
        SELECT {ORDER_COLUMNS} FROM {ORDER_FROM}
        WHERE o.account_id = $1 AND ($2::uuid IS NULL OR o.id < $2) AND ($3::text IS NULL OR o.status = $3)
        ORDER BY o.id DESC LIMIT $4
        """,
        account_id,
        cursor,
        status,
        limit + 1,
    )
    return Page.of(rows, limit, public_order)
