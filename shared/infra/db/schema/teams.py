"""Teams: the people who are members of an account (the billing entity), invitations to join one, and the
account's own audit trail of member, role, key, budget and billing changes.

A person is the account they signed up with (``accounts``: address, password, second factor); every account
is also an organisation whose members are people, each with a role. An account's founder is its first owner
(a trigger adds the membership when the account is created: ``m1501_teams_owner_memberships``)."""

from __future__ import annotations

from piccolo.columns import JSONB, UUID, BigInt, Boolean, ForeignKey, OnDelete, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Check, Unique
from piccolo.table import Table

from shared.infra.db.schema.accounts import Account

MEMBER_ROLE_CHECK = "role IN ('owner', 'admin', 'developer', 'billing', 'viewer')"


class AccountMember(Table, tablename="account_members"):
    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.cascade, index=True)
    person_id = ForeignKey(Account, null=False, on_delete=OnDelete.cascade, index=True)
    role = Varchar(length=16)
    invited_by = UUID(null=True, default=None)  # the person who invited them; NULL for the founder
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    # The member's budget per period, over their sessions and the keys they created (as on ``api_keys``; see
    # ``shared.ledger.budgets``)
    budget = BigInt(null=True, default=None)
    budget_period = Varchar(length=8, null=True, default=None)
    budget_rolling = Boolean(default=False)
    budget_anchor = Timestamptz(null=True, default=None)
    budget_period_start = Timestamptz(null=True, default=None)
    budget_spent = BigInt(default=0)
    budget_held = BigInt(default=0)

    account_members_unique = Unique(["account_id", "person_id"])
    account_members_budget_check = Check(
        "budget_spent >= 0 AND budget_held >= 0 AND (budget IS NULL OR (budget >= 0 AND budget_period IN "
        "('day', 'week', 'month') AND budget_anchor IS NOT NULL))"
    )
    account_members_role_check = Check(MEMBER_ROLE_CHECK)


class AccountInvitation(Table, tablename="account_invitations"):
    """An invitation mailed to an address: only the SHA-256 of its token is kept. Accepted, revoked or expired,
    it no longer works."""

    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.cascade, index=True)
    email = Varchar(length=320)
    role = Varchar(length=16)
    token_hash = Varchar(length=64, unique=True)
    invited_by = UUID(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    expires_at = Timestamptz()
    accepted_at = Timestamptz(null=True, default=None)
    accepted_by = UUID(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)

    account_invitations_role_check = Check(MEMBER_ROLE_CHECK)


class AccountAuditEntry(Table, tablename="account_audit_log"):
    """What members did to their account (kept apart from the staff audit log). ``actor_id`` is a plain column
    so that erasing a person does not rewrite the account's history; ``actor`` is their address at the time."""

    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.cascade)
    actor_id = UUID(null=True, default=None)
    actor = Varchar(length=320)
    role = Varchar(length=16)  # the actor's member role then
    action = Varchar(length=64)  # e.g. "member.invite", "member.role", "key.create", "billing.email"
    target_type = Varchar(length=32)
    target_id = Varchar(length=100)
    before = JSONB(null=True, default=None)
    after = JSONB(null=True, default=None)
    ip = Varchar(length=64, default="")
    via = Varchar(length=16)  # "dashboard" (a session) or "api" (an API key)
    created_at = Timestamptz(default=TimestamptzNow())

    account_audit_log_via_check = Check("via IN ('api', 'dashboard')")
