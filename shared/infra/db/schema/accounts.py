"""Accounts, their API keys, sign-in tokens and OAuth identities."""

from __future__ import annotations

from piccolo.columns import (
    UUID,
    Array,
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
    # Rate limits: NULL means the default from the settings
    rate_limit_rpm = Integer(null=True, default=None)
    max_inflight_tasks = Integer(null=True, default=None)
    # Suspension: the reason an operator gave, shown to the account's owner
    suspension_reason = Text(null=True, default=None)
    # Second factor (TOTP, RFC 6238): the base32 secret, set once enrolment is confirmed; the last time step
    # accepted (a code is used once); SHA-256 hashes of the unused recovery codes
    totp_secret = Varchar(length=64, null=True, default=None)
    totp_enabled_at = Timestamptz(null=True, default=None)
    totp_last_step = BigInt(default=0)
    recovery_code_hashes = Array(Varchar(length=64), null=True, default=None)
    # Where receipts are addressed (the buyer on them); NULL: the account's own address
    billing_email = Varchar(length=320, null=True, default=None)
    # Alerts (``shared.alerts``): below ``low_balance_threshold`` micro-credits available, one alert, re-armed
    # (``low_balance_alerted_at`` back to NULL) once the balance is back at or above it; the percentages of a
    # key's period budget whose crossing alerts
    low_balance_threshold = BigInt(null=True, default=None)
    low_balance_alerted_at = Timestamptz(null=True, default=None)
    budget_alert_percents = Array(Integer(), default=[80, 100])

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
    # Limits set by the owner: NULL means "any model" / "no cap". ``spent`` is what requests through this key
    # were charged; ``cap_held`` what the pending holds of a capped key have reserved (see
    # ``shared.accounts.key_policy`` and ``shared.ledger.spend_caps``).
    allowed_models = Array(Varchar(length=128), null=True, default=None)
    spend_cap = BigInt(null=True, default=None)
    spent = BigInt(default=0)
    cap_held = BigInt(default=0)
    rotated_at = Timestamptz(null=True, default=None)
    deleted_at = Timestamptz(null=True, default=None)  # deleted by its owner: revoked and no longer listed
    # Rate limits: NULL means the default from the settings
    rate_limit_rpm = Integer(null=True, default=None)
    max_inflight_tasks = Integer(null=True, default=None)
    # Teams: the person who created the key (a plain column: the key stays the account's when they leave) and
    # the member role the key acts with (its creator's role then; keys from before teams act as the owner)
    created_by = UUID(null=True, default=None)
    role = Varchar(length=16, default="owner")

    # A budget per period (``shared.ledger.budgets``): at most ``budget`` micro-credits per day, week or month,
    # UTC calendar periods or rolling ones counted from ``budget_anchor``; ``budget_spent`` is what was charged
    # in the period that began at ``budget_period_start``, ``budget_held`` what pending holds reserved
    budget = BigInt(null=True, default=None)
    budget_period = Varchar(length=8, null=True, default=None)
    budget_rolling = Boolean(default=False)
    budget_anchor = Timestamptz(null=True, default=None)
    budget_period_start = Timestamptz(null=True, default=None)
    budget_spent = BigInt(default=0)
    budget_held = BigInt(default=0)
    # The highest budget alert percentage already sent for the period that began at ``budget_alerted_period``
    budget_alerted_percent = Integer(default=0)
    budget_alerted_period = Timestamptz(null=True, default=None)

    api_keys_budget_check = Check(
        "budget_spent >= 0 AND budget_held >= 0 AND (budget IS NULL OR (budget >= 0 AND budget_period IN "
        "('day', 'week', 'month') AND budget_anchor IS NOT NULL))"
    )
    api_keys_role_check = Check("role IN ('owner', 'admin', 'developer', 'billing', 'viewer')")
    api_keys_spend_check = Check("spent >= 0 AND cap_held >= 0 AND (spend_cap IS NULL OR spend_cap >= 0)")
    api_keys_rate_limits_check = Check(
        "(rate_limit_rpm IS NULL OR rate_limit_rpm > 0) AND (max_inflight_tasks IS NULL OR max_inflight_tasks > 0)"
    )


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
