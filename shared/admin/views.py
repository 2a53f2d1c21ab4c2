"""What the admin API answers (``/v1/admin``): accounts as operators see them, the results of their actions,
provider health, the queue, and billing across accounts."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import msgspec

from shared.accounts.service import Account, CreditBalance
from shared.billing.orders import Order
from shared.ledger.money import Credits


class AccountSummary(msgspec.Struct):
    """An account in the search results."""

    id: str
    object: Literal["account"]
    email: str | None
    role: str
    status: str
    balance: CreditBalance
    created_at: dt.datetime


class AccountKey(msgspec.Struct):
    """One of the account's API keys, as operators see it."""

    id: str
    name: str
    prefix: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    expires_at: dt.datetime | None
    revoked: bool
    spend_cap: Credits | None
    spent: Credits


class AccountDetail(Account, kw_only=True):
    """The account as its owner sees it, with its API keys and its tasks counted by status."""

    api_keys: list[AccountKey]
    tasks: dict[str, int]


class CreditAdjustment(msgspec.Struct):
    """A grant (positive ``amount``) or deduction; ``replayed``: this ``operation_id`` was applied before."""

    object: Literal["credit_adjustment"]
    account_id: str
    operation_id: str
    amount: Credits
    replayed: bool
    reason: str
    balance: CreditBalance


class RevokedKey(msgspec.Struct):
    id: str
    object: Literal["api_key"]
    account_id: str
    revoked: bool
    already_revoked: bool


class AccountStanding(msgspec.Struct):
    account_id: str
    status: str
    suspension_reason: str | None


class AccountLimits(msgspec.Struct):
    """The account's own limits (null: the default)."""

    account_id: str
    rate_limit_rpm: int | None
    max_inflight_tasks: int | None


class AccountRole(msgspec.Struct):
    account_id: str
    role: str


class VerificationMail(msgspec.Struct):
    account_id: str
    object: Literal["verification_mail"]
    sent_to: str


class CircuitState(msgspec.Struct):
    """A provider's circuit: ``closed``, ``open`` or ``half_open``; ``held_open``: opened by hand."""

    state: str
    failures: int
    open_until_ms: int | None
    held_open: bool


class ProviderAttempts(msgspec.Struct):
    count: int
    error_rate: float | None
    latency_p50_ms: int | None
    latency_p95_ms: int | None


class ProviderHealth(msgspec.Struct):
    """A provider: credentials configured, its circuit, the last hour's tasks by status and its attempts."""

    name: str
    object: Literal["provider_health"]
    configured: bool
    circuit: CircuitState
    last_hour: dict[str, int]
    attempts_last_hour: ProviderAttempts


class ProviderCircuit(msgspec.Struct):
    name: str
    object: Literal["provider_circuit"]
    circuit: CircuitState


class QueueOverview(msgspec.Struct):
    object: Literal["queue"]
    queued: int
    running: int
    oldest_queued_at: dt.datetime | None
    oldest_queued_task: str | None


class AccountOrder(msgspec.Struct):
    """An order in the list across accounts (``credits`` in micro-credits, amounts in minor units)."""

    id: uuid.UUID
    account_id: uuid.UUID
    email: str | None
    product_name: str
    amount: int
    currency: str
    credits: int
    status: str
    amount_paid: int | None
    amount_refunded: int
    credits_refunded: int
    created_at: dt.datetime
    paid_at: dt.datetime | None


class StripeEvent(msgspec.Struct):
    """A Stripe event as received, and how its processing went."""

    id: uuid.UUID
    event_id: str
    type: str
    status: str
    attempts: int
    last_error: str | None
    received_at: dt.datetime
    processed_at: dt.datetime | None


class RetriedStripeEvent(msgspec.Struct):
    id: str
    event_id: str
    type: str
    status: str
    attempts: int
    last_error: str | None
    processed_at: dt.datetime | None
    object: Literal["stripe_event"]


class OrderRefund(msgspec.Struct):
    """A refund started by an operator, with the order as it stands afterwards."""

    object: Literal["refund"]
    id: str
    status: str
    order: Order


S = TypeVar("S", bound=msgspec.Struct)


def from_row(cls: type[S], row: Mapping[str, Any]) -> S:
    """A struct from a database row whose columns are its fields."""
    return cls(**dict(row))
