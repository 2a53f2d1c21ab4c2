"""The schema, as Piccolo tables. Migrations in ``migrations/`` are generated from these.

Money columns are BIGINT micro-credits. The database enforces the money invariants with CHECK constraints
so that no code path, however wrong, can drive a balance or a lot below zero.
"""

from __future__ import annotations

from piccolo.columns import (
    JSONB,
    UUID,
    Array,
    BigInt,
    ForeignKey,
    Integer,
    OnDelete,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Check, Unique
from piccolo.table import Table


class Account(Table, tablename="accounts"):
    id = UUID(primary_key=True)
    email = Varchar(length=320, null=True, unique=True)  # lower-cased; NULL once the account is erased
    role = Varchar(length=16, default="user")
    status = Varchar(length=16, default="active")
    # Denormalised sums kept in the same transactions as the rows they sum:
    credits_total = BigInt(default=0)  # sum of the remaining credits of the account's lots
    credits_held = BigInt(default=0)  # sum of the account's pending holds
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    # Self-service accounts (sign-up, sign-in): NULL for accounts that never set a password / were erased.
    password_hash = Text(null=True, default=None)
    email_verified_at = Timestamptz(null=True, default=None)
    age_confirmed_at = Timestamptz(null=True, default=None)
    deleted_at = Timestamptz(null=True, default=None)
    # Rate limits (issue 8): NULL means the default from the settings
    rate_limit_rpm = Integer(null=True, default=None)
    max_inflight_tasks = Integer(null=True, default=None)

    accounts_balance_check = Check("credits_held >= 0 AND credits_total >= credits_held")
    accounts_role_check = Check("role IN ('user', 'support', 'admin')")
    accounts_status_check = Check("status IN ('active', 'suspended', 'deleted')")
    accounts_rate_limits_check = Check(
        "(rate_limit_rpm IS NULL OR rate_limit_rpm > 0) AND (max_inflight_tasks IS NULL OR max_inflight_tasks > 0)"
    )


class ApiKey(Table, tablename="api_keys"):
    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.cascade, index=True)
    name = Varchar(length=100, default="")
    prefix = Varchar(length=32)  # the visible start of the key, e.g. "cdt_3kT9xQ"
    key_hash = Varchar(length=64, unique=True)  # SHA-256 hex of the whole key; the key itself is never stored
    created_at = Timestamptz(default=TimestamptzNow())
    last_used_at = Timestamptz(null=True, default=None)
    expires_at = Timestamptz(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)
    # Limits set by the owner: NULL means "any model" / "no cap". ``spent`` is what tasks through this key
    # were charged; ``cap_held`` what capped submits have reserved and not settled yet (see
    # ``shared.accounts.limits``).
    allowed_models = Array(Varchar(length=128), null=True, default=None)
    spend_cap = BigInt(null=True, default=None)
    spent = BigInt(default=0)
    cap_held = BigInt(default=0)
    rotated_at = Timestamptz(null=True, default=None)
    deleted_at = Timestamptz(null=True, default=None)  # deleted by its owner: revoked and no longer listed
    # Rate limits (issue 8): NULL means the default from the settings
    rate_limit_rpm = Integer(null=True, default=None)
    max_inflight_tasks = Integer(null=True, default=None)

    api_keys_spend_check = Check("spent >= 0 AND cap_held >= 0 AND (spend_cap IS NULL OR spend_cap >= 0)")
    api_keys_rate_limits_check = Check(
        "(rate_limit_rpm IS NULL OR rate_limit_rpm > 0) AND (max_inflight_tasks IS NULL OR max_inflight_tasks > 0)"
    )


class CreditLot(Table, tablename="credit_lots"):
    """A grant of credits. ``remaining`` is what is not yet charged, expired or revoked; ``reserved`` is the
    part of ``remaining`` that pending holds have set aside."""

    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.restrict)
    source = Varchar(length=16)
    reference = Varchar(length=200, null=True, default=None)
    amount = BigInt()
    remaining = BigInt()
    reserved = BigInt(default=0)
    expires_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    closed_at = Timestamptz(null=True, default=None)

    credit_lots_amounts_check = Check("amount > 0 AND remaining >= reserved AND reserved >= 0 AND remaining <= amount")
    credit_lots_source_check = Check("source IN ('signup', 'promo', 'purchase', 'manual')")


class Task(Table, tablename="tasks"):
    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.restrict)
    api_key_id = ForeignKey(ApiKey, null=True, on_delete=OnDelete.set_null, default=None)
    model = Varchar(length=128)
    kind = Varchar(length=16)
    status = Varchar(length=16, default="queued")
    input = JSONB(default="{}")
    outputs = JSONB(default="[]")
    metadata = JSONB(default="{}")
    webhook_url = Text(null=True, default=None)
    error_code = Varchar(length=64, null=True, default=None)
    error_message = Text(null=True, default=None)
    provider = Varchar(length=64, null=True, default=None)
    upstream_id = Text(null=True, default=None)
    progress = JSONB(null=True, default=None)
    credits_held = BigInt(default=0)
    credits_charged = BigInt(default=0)
    attempts = Integer(default=0)
    lease_expires_at = Timestamptz(null=True, default=None)
    deadline_at = Timestamptz()
    created_at = Timestamptz(default=TimestamptzNow())
    started_at = Timestamptz(null=True, default=None)
    completed_at = Timestamptz(null=True, default=None)
    # Retention (issue 9): when the task's input and output files were purged (RETENTION_DAYS after it ended)
    purged_at = Timestamptz(null=True, default=None)

    tasks_status_check = Check("status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')")
    tasks_credits_check = Check("credits_charged >= 0 AND credits_charged <= credits_held")


class Hold(Table, tablename="holds"):
    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.restrict)
    task_id = ForeignKey(Task, null=True, unique=True, on_delete=OnDelete.restrict, default=None)
    amount = BigInt()
    charged = BigInt(default=0)
    status = Varchar(length=16, default="pending")
    created_at = Timestamptz(default=TimestamptzNow())
    resolved_at = Timestamptz(null=True, default=None)

    holds_amounts_check = Check("amount >= 0 AND charged >= 0 AND charged <= amount")
    holds_status_check = Check(
        "status IN ('pending', 'posted', 'voided') AND (status = 'pending') = (resolved_at IS NULL)"
    )


class HoldAllocation(Table, tablename="hold_allocations"):
    """Which lots a hold set credits aside from, and how much of each was finally charged."""

    id = UUID(primary_key=True)
    hold_id = ForeignKey(Hold, null=False, on_delete=OnDelete.restrict, index=True)
    lot_id = ForeignKey(CreditLot, null=False, on_delete=OnDelete.restrict)
    amount = BigInt()
    charged = BigInt(default=0)

    hold_allocations_amounts_check = Check("amount > 0 AND charged >= 0 AND charged <= amount")


class LedgerEntry(Table, tablename="ledger_entries"):
    """Append-only. ``delta_total`` and ``delta_held`` are the signed effects on the account's sums, so
    summing them reproduces ``credits_total`` and ``credits_held`` (the ledger check does exactly that)."""

    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.restrict)
    kind = Varchar(length=16)
    amount = BigInt()
    delta_total = BigInt(default=0)
    delta_held = BigInt(default=0)
    lot_id = ForeignKey(CreditLot, null=True, on_delete=OnDelete.restrict, default=None)
    hold_id = ForeignKey(Hold, null=True, on_delete=OnDelete.restrict, default=None)
    task_id = UUID(null=True, default=None)
    idempotency_key = Varchar(length=200, unique=True)
    description = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())

    ledger_entries_kind_check = Check(
        "kind IN ('grant', 'hold', 'charge', 'release', 'void', 'expire', 'revoke', 'refund', 'adjust')"
    )
    ledger_entries_amount_check = Check("amount >= 0")


class UsageRecord(Table, tablename="usage_records"):
    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.restrict)
    api_key_id = ForeignKey(ApiKey, null=True, on_delete=OnDelete.set_null, default=None)
    task_id = UUID(null=True, default=None, unique=True)
    model = Varchar(length=128)
    provider = Varchar(length=64, null=True, default=None)
    kind = Varchar(length=16)
    status = Varchar(length=16)
    units = JSONB(default="{}")
    credits = BigInt(default=0)
    latency_ms = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    # usage (issue 8): what kind of request this was, and the id of a synchronous (non-task) request
    source = Varchar(length=32, default="task")
    request_id = UUID(null=True, default=None, unique=True)

    usage_records_status_check = Check("status IN ('succeeded', 'failed', 'canceled')")
    usage_records_source_check = Check("source IN ('task', 'chat.completion', 'image.generation')")


class IdempotencyRecord(Table, tablename="idempotency_records"):
    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.restrict)
    key = Varchar(length=255)
    request_hash = Varchar(length=64)
    task_id = ForeignKey(Task, null=True, on_delete=OnDelete.cascade, default=None)
    created_at = Timestamptz(default=TimestamptzNow())

    idempotency_records_unique = Unique(["account_id", "key"])


# -- webhooks (issue 7) ---------------------------------------------------------------------------------------


class WebhookEndpoint(Table, tablename="webhook_endpoints"):
    """An account-level destination for task events. ``status = 'deleted'`` keeps the row for the log."""

    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.cascade, index=True)
    url = Text()
    description = Varchar(length=200, default="")
    events = Array(base_column=Varchar(length=32))
    status = Varchar(length=16, default="enabled")
    disabled_reason = Varchar(length=16, null=True, default=None)
    disabled_at = Timestamptz(null=True, default=None)
    failing_since = Timestamptz(null=True, default=None)  # first failed attempt since the last success
    secret = Varchar(length=100)
    previous_secret = Varchar(length=100, null=True, default=None)  # still signs until it expires
    previous_secret_expires_at = Timestamptz(null=True, default=None)
    secret_rotated_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())

    webhook_endpoints_status_check = Check("status IN ('enabled', 'disabled', 'deleted')")
    webhook_endpoints_reason_check = Check(
        "disabled_reason IS NULL OR disabled_reason IN ('manual', 'gone', 'failing', 'deleted')"
    )


class WebhookSigningSecret(Table, tablename="webhook_signing_secrets"):
    """The account's secret for deliveries to a task's own ``webhook_url`` (created on first use)."""

    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, unique=True, on_delete=OnDelete.cascade)
    secret = Varchar(length=100)
    previous_secret = Varchar(length=100, null=True, default=None)
    previous_secret_expires_at = Timestamptz(null=True, default=None)
    secret_rotated_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class WebhookEvent(Table, tablename="webhook_events"):
    """One event of a task (its id is the ``webhook-id`` header); ``data`` is the task row at that moment."""

    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.cascade)
    task_id = ForeignKey(Task, null=False, on_delete=OnDelete.cascade)
    type = Varchar(length=32)
    data = JSONB()
    created_at = Timestamptz(default=TimestamptzNow())

    webhook_events_task_type_unique = Unique(["task_id", "type"])


class WebhookDelivery(Table, tablename="webhook_deliveries"):
    """One event to one destination (an endpoint, or the task's ``webhook_url`` when ``endpoint_id`` is NULL)."""

    id = UUID(primary_key=True)
    event_id = ForeignKey(WebhookEvent, null=False, on_delete=OnDelete.cascade, index=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.cascade)
    task_id = UUID()
    event_type = Varchar(length=32)
    endpoint_id = ForeignKey(WebhookEndpoint, null=True, on_delete=OnDelete.cascade, default=None)
    url = Text()
    status = Varchar(length=16, default="pending")
    attempts = Integer(default=0)
    max_attempts = Integer(default=8)
    next_attempt_at = Timestamptz(null=True, default=None)
    locked_until = Timestamptz(null=True, default=None)
    last_attempt_at = Timestamptz(null=True, default=None)
    last_status_code = Integer(null=True, default=None)
    last_error = Text(null=True, default=None)
    delivered_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())

    webhook_deliveries_status_check = Check(
        "status IN ('pending', 'delivered', 'failed') AND (status = 'pending') = (next_attempt_at IS NOT NULL)"
    )


class WebhookAttempt(Table, tablename="webhook_attempts"):
    """One HTTP request of a delivery. ``finished_at`` is NULL while it is in flight."""

    id = UUID(primary_key=True)
    delivery_id = ForeignKey(WebhookDelivery, null=False, on_delete=OnDelete.cascade, index=True)
    attempt = Integer()
    url = Text()
    started_at = Timestamptz()
    finished_at = Timestamptz(null=True, default=None)
    status_code = Integer(null=True, default=None)
    latency_ms = Integer(null=True, default=None)
    error = Text(null=True, default=None)
    response_body = Text(null=True, default=None)  # the first KiB, for debugging the receiver


class ApiKeyHold(Table, tablename="api_key_holds"):
    """The part of a pending hold counted against its key's spend cap; gone once the hold resolves."""

    id = UUID(primary_key=True)
    hold_id = ForeignKey(Hold, null=False, unique=True, on_delete=OnDelete.restrict)
    api_key_id = ForeignKey(ApiKey, null=False, on_delete=OnDelete.cascade, index=True)
    amount = BigInt()
    created_at = Timestamptz(default=TimestamptzNow())

    api_key_holds_amount_check = Check("amount >= 0")


class AccountToken(Table, tablename="account_tokens"):
    """Single-use, expiring tokens mailed to people (email verification, password reset). Only the SHA-256 of
    the token is stored; ``email`` is the address it was sent to, so it cannot verify a different one."""

    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.cascade, index=True)
    purpose = Varchar(length=32)
    token_hash = Varchar(length=64, unique=True)
    email = Varchar(length=320)
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())

    account_tokens_purpose_check = Check("purpose IN ('verify_email', 'reset_password')")


class OAuthIdentity(Table, tablename="oauth_identities"):
    """A Google or GitHub account linked to a Conduit account (removed when the account is erased)."""

    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.cascade, index=True)
    provider = Varchar(length=16)
    subject = Varchar(length=255)  # the provider's stable user id
    email = Varchar(length=320, null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    last_used_at = Timestamptz(null=True, default=None)

    oauth_identities_unique = Unique(["provider", "subject"])
    oauth_identities_provider_check = Check("provider IN ('google', 'github')")


class PromoCode(Table, tablename="promo_codes"):
    id = UUID(primary_key=True)
    code = Varchar(length=64, unique=True)  # upper-cased
    credits = BigInt()
    expires_at = Timestamptz(null=True, default=None)  # after this the code cannot be claimed
    credit_validity_days = Integer(null=True, default=None)  # lifetime of the credits it grants; NULL: no expiry
    max_redemptions = Integer(null=True, default=None)  # NULL: unlimited
    redemptions = Integer(default=0)
    description = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())
    disabled_at = Timestamptz(null=True, default=None)

    promo_codes_credits_check = Check("credits > 0 AND (credit_validity_days IS NULL OR credit_validity_days > 0)")
    promo_codes_redemptions_check = Check(
        "redemptions >= 0 AND (max_redemptions IS NULL OR (max_redemptions > 0 AND redemptions <= max_redemptions))"
    )


class PromoRedemption(Table, tablename="promo_redemptions"):
    id = UUID(primary_key=True)
    promo_code_id = ForeignKey(PromoCode, null=False, on_delete=OnDelete.restrict)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.restrict, index=True)
    lot_id = ForeignKey(CreditLot, null=True, on_delete=OnDelete.restrict, default=None)
    created_at = Timestamptz(default=TimestamptzNow())

    promo_redemptions_unique = Unique(["promo_code_id", "account_id"])


# -- support tickets (issue 8) ---------------------------------------------------------------------------------


class SupportTicket(Table, tablename="support_tickets"):
    """A conversation between an account and support staff. ``open``: waiting for staff; ``pending``: staff
    answered, waiting for the user; ``closed``."""

    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.cascade)
    subject = Varchar(length=200)
    category = Varchar(length=16)
    status = Varchar(length=16, default="open")
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    last_message_at = Timestamptz(default=TimestamptzNow())
    last_message_by = Varchar(length=16, default="user")
    closed_at = Timestamptz(null=True, default=None)

    support_tickets_category_check = Check("category IN ('account', 'billing', 'technical', 'product')")
    support_tickets_status_check = Check(
        "status IN ('open', 'pending', 'closed') AND (status = 'closed') = (closed_at IS NOT NULL)"
    )
    support_tickets_last_by_check = Check("last_message_by IN ('user', 'staff')")


class SupportMessage(Table, tablename="support_messages"):
    """One message of a ticket's thread, by its owner (``user``) or by support staff (``staff``)."""

    id = UUID(primary_key=True)
    ticket_id = ForeignKey(SupportTicket, null=False, on_delete=OnDelete.cascade, index=True)
    author_id = ForeignKey(Account, null=True, on_delete=OnDelete.set_null, default=None)
    author_role = Varchar(length=16)
    body = Text()
    redacted_keys = Integer(default=0)  # API keys removed from the body and text attachments before storing
    created_at = Timestamptz(default=TimestamptzNow())

    support_messages_role_check = Check("author_role IN ('user', 'staff')")


class SupportAttachment(Table, tablename="support_attachments"):
    """A file attached to a message; the bytes live in storage under ``storage_key``."""

    id = UUID(primary_key=True)
    ticket_id = ForeignKey(SupportTicket, null=False, on_delete=OnDelete.cascade, index=True)
    message_id = ForeignKey(SupportMessage, null=False, on_delete=OnDelete.cascade, index=True)
    filename = Varchar(length=255)
    content_type = Varchar(length=64)  # detected from the content, never taken from the client
    size_bytes = Integer()
    sha256 = Varchar(length=64)
    storage_key = Varchar(length=200)
    created_at = Timestamptz(default=TimestamptzNow())


# -- billing (credit packs through Stripe Checkout) ---------------------------------------------------------


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


TABLES: list[type[Table]] = [
    Account,
    ApiKey,
    CreditLot,
    Task,
    Hold,
    HoldAllocation,
    LedgerEntry,
    UsageRecord,
    IdempotencyRecord,
    # webhooks (issue 7)
    WebhookEndpoint,
    WebhookSigningSecret,
    WebhookEvent,
    WebhookDelivery,
    WebhookAttempt,
    ApiKeyHold,
    AccountToken,
    OAuthIdentity,
    PromoCode,
    PromoRedemption,
    # support tickets (issue 8)
    SupportTicket,
    SupportMessage,
    SupportAttachment,
    # billing (issue 6)
    BillingOrder,
    BillingRefund,
    StripeEvent,
]
