"""The public shapes of usage: a record (``GET /v1/usage``) and the summary (``GET /v1/usage/summary``)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import msgspec

from shared.ledger.money import Credits


class UsageRecord(msgspec.Struct):
    """One model request (a task or a synchronous request), what it used (``units``) and what it cost."""

    id: str
    object: Literal["usage_record"]
    created_at: dt.datetime
    source: str
    task_id: str | None
    request_id: str | None
    api_key_id: str | None
    api_key_prefix: str | None
    model: str
    provider: str | None
    kind: str
    status: str
    units: dict[str, Any]
    credits: Credits
    latency_ms: int | None
    # a blocked request: the category that blocked it; a request served though flagged (or whose output was
    # blocked): the categories of its moderation events, comma-separated
    moderation_category: str | None


class UsageFilterValues(msgspec.Struct):
    """The filters a summary was computed with (null: not filtered on)."""

    start: dt.datetime | None = msgspec.field(name="from")
    end: dt.datetime | None = msgspec.field(name="to")
    model: str | None = None
    key: str | None = None
    status: str | None = None


class UsageTotals(msgspec.Struct):
    """Requests by status, credits, and the units used (only those not zero)."""

    requests: int
    succeeded: int
    failed: int
    canceled: int
    blocked: int  # refused by the moderation policy
    credits: Credits
    units: dict[str, float]


class UsageGrandTotals(UsageTotals):
    """The totals of the whole summary, with the blocked requests by moderation category, and the requests
    served though flagged by the categories they were flagged for (a request flagged for two counts in both)."""

    blocked_by_category: dict[str, int]
    flagged_by_category: dict[str, int]


class UsageByDayAndModel(UsageTotals):
    date: str  # the UTC day, ISO 8601
    model: str


class UsageByKey(UsageTotals):
    """The totals of one API key; ``api_key_id`` null: requests made with a session (the dashboard)."""

    api_key_id: str | None
    api_key_prefix: str | None
    api_key_name: str | None


class UsageSummary(msgspec.Struct):
    object: Literal["usage_summary"]
    filters: UsageFilterValues
    total: UsageGrandTotals
    by_day_and_model: list[UsageByDayAndModel]
    by_key: list[UsageByKey]
