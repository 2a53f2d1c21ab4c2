"""Money: credit lots, holds (with their lot allocations and spend-cap reservations), the ledger, usage
records."""

from __future__ import annotations

from piccolo.columns import (
    JSONB,
    UUID,
    BigInt,
    Boolean,
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

from shared.infra.db.schema.accounts import Account, ApiKey
from shared.infra.db.schema.tasks import Task


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


class ApiKeyHold(Table, tablename="api_key_holds"):
    """The part of a pending hold counted against its key's spend cap (``capped``) and period budget
    (``budgeted``); gone once the hold resolves."""

    id = UUID(primary_key=True)
    hold_id = ForeignKey(Hold, null=False, unique=True, on_delete=OnDelete.restrict)
    api_key_id = ForeignKey(ApiKey, null=False, on_delete=OnDelete.cascade, index=True)
    amount = BigInt()
    capped = Boolean(default=True)
    budgeted = Boolean(default=False)
    created_at = Timestamptz(default=TimestamptzNow())

    api_key_holds_amount_check = Check("amount >= 0")


class MemberHold(Table, tablename="member_holds"):
    """The part of a pending hold counted against a member's period budget; gone once the hold resolves. The
    member is named by plain columns: their leaving does not touch the hold."""

    id = UUID(primary_key=True)
    hold_id = ForeignKey(Hold, null=False, unique=True, on_delete=OnDelete.restrict)
    account_id = UUID()
    person_id = UUID()
    amount = BigInt()
    created_at = Timestamptz(default=TimestamptzNow())

    member_holds_amount_check = Check("amount >= 0")


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
    # usage: what kind of request this was, and the id of a synchronous (non-task) request
    source = Varchar(length=32, default="task")
    request_id = UUID(null=True, default=None, unique=True)
    # moderation: the category of a request refused by the policy (status 'blocked')
    moderation_category = Varchar(length=64, null=True, default=None)

    usage_records_status_check = Check("status IN ('succeeded', 'failed', 'canceled', 'blocked')")
    usage_records_source_check = Check(
        "source IN ('task', 'chat.completion', 'image.generation', 'embedding', 'text_completion', 'moderation')"
    )
