"""Credit-pack purchases: orders, refunds, stored Stripe events."""

from __future__ import annotations

from piccolo.columns import (
    JSONB,
    UUID,
    BigInt,
    ForeignKey,
    Integer,
    OnDelete,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Check
from piccolo.table import Table

from shared.infra.db.schema.accounts import Account
from shared.infra.db.schema.ledger import CreditLot


class BillingOrder(Table, tablename="billing_orders"):
    """One purchase of a credit pack. The terms (price, credits, validity) are copied from the product at
    order time; ``amount_*`` are in the currency's minor unit, ``credits_*`` in micro-credits."""

    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.restrict, index=True)
    product_id = Varchar(length=64)
    product_name = Varchar(length=200)
    amount = BigInt()
    currency = Varchar(length=3)
    credits = BigInt()
    validity_days = Integer(null=True, default=None)
    status = Varchar(length=24, default="pending")
    checkout_session_id = Varchar(length=255, null=True, default=None, unique=True)
    checkout_url = Text(null=True, default=None)
    payment_intent_id = Varchar(length=255, null=True, default=None, unique=True)
    lot_id = ForeignKey(CreditLot, null=True, on_delete=OnDelete.restrict, default=None)
    amount_paid = BigInt(default=0)
    amount_refunded = BigInt(default=0)  # total refunded: through Conduit's API plus outside it
    amount_refunded_external = BigInt(default=0)  # refunded outside Conduit's API (e.g. the Stripe dashboard)
    credits_granted = BigInt(default=0)
    credits_refunded = BigInt(default=0)
    credits_revoked = BigInt(default=0)
    failure_reason = Text(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    paid_at = Timestamptz(null=True, default=None)
    closed_at = Timestamptz(null=True, default=None)
    # For the receipt, as Stripe reports them: the tax in the total, the card's last four digits, and Stripe's
    # own hosted receipt
    amount_tax = BigInt(null=True, default=None)
    card_last4 = Varchar(length=4, null=True, default=None)
    stripe_receipt_url = Text(null=True, default=None)

    billing_orders_status_check = Check(
        "status IN ('pending', 'paid', 'failed', 'expired', 'refunded', 'partially_refunded')"
    )
    billing_orders_amounts_check = Check(
        "amount > 0 AND credits > 0 AND amount_paid >= 0 AND amount_refunded >= amount_refunded_external "
        "AND amount_refunded_external >= 0 AND credits_granted >= 0 "
        "AND credits_refunded >= 0 AND credits_revoked >= 0 "
        "AND credits_refunded + credits_revoked <= credits_granted"
    )
    billing_orders_paid_check = Check("(lot_id IS NULL) = (paid_at IS NULL)")


class BillingRefund(Table, tablename="billing_refunds"):
    """A refund of an order's unused credits, asked through the API. The credits leave the balance when the
    row is written (``pending``); the money follows through Stripe (``succeeded``), or the credits come back
    (``failed``). ``request`` is exactly what is sent to Stripe, so a retry repeats the same request."""

    id = UUID(primary_key=True)
    order_id = ForeignKey(BillingOrder, null=False, on_delete=OnDelete.restrict, index=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.restrict)
    credits = BigInt()
    amount = BigInt()
    currency = Varchar(length=3)
    status = Varchar(length=16, default="pending")
    request = JSONB(default="{}")
    stripe_refund_id = Varchar(length=255, null=True, default=None, unique=True)
    failure_reason = Text(null=True, default=None)
    attempts = Integer(default=0)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())

    billing_refunds_status_check = Check("status IN ('pending', 'succeeded', 'failed')")
    billing_refunds_amounts_check = Check("credits > 0 AND amount > 0")


class StripeEvent(Table, tablename="stripe_events"):
    """Every verified webhook delivery, stored once per Stripe event id and processed by a worker job."""

    id = UUID(primary_key=True)
    event_id = Varchar(length=255, unique=True)
    type = Varchar(length=100)
    payload = JSONB()
    status = Varchar(length=16, default="pending")
    attempts = Integer(default=0)
    last_error = Text(null=True, default=None)
    received_at = Timestamptz(default=TimestamptzNow())
    processed_at = Timestamptz(null=True, default=None)

    stripe_events_status_check = Check("status IN ('pending', 'processed', 'ignored', 'failed')")
