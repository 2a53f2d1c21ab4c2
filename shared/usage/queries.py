"""Reading usage records: filters, the paginated list and the summary (totals per day and model, per key).

Filters are the same for the list, the summary and the CSV export: ``from`` (inclusive) and ``to`` (exclusive)
on the time the request finished, ``model``, ``key`` (an API key id) and ``status``. Times are ISO 8601; a date
alone means midnight UTC, a time without an offset is UTC. Days in the summary are UTC days.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from shared.infra.db import Database, Record
from shared.infra.db.records import JSONB, Column, RecordMapping
from shared.infra.errors import InvalidInput
from shared.infra.ids import parse_uuid
from shared.infra.pagination import Page, page_cursor
from shared.ledger.money import Credits
from shared.usage import STATUSES, UNIT_FIELDS
from shared.usage.views import (
    UsageByDayAndModel,
    UsageByKey,
    UsageFilterValues,
    UsageGrandTotals,
    UsageRecord,
    UsageSummary,
)

MAX_MODEL = 128


@dataclass(frozen=True, slots=True)
class UsageFilters:
    account_id: uuid.UUID
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    model: str | None = None
    api_key_id: uuid.UUID | None = None
    status: str | None = None

    @classmethod
    def parse(
        cls,
        account_id: uuid.UUID,
        *,
        start: str | None = None,
        end: str | None = None,
        model: str | None = None,
        key: str | None = None,
        status: str | None = None,
    ) -> UsageFilters:
        api_key_id = None
        if key:
            api_key_id = parse_uuid(key)
            if api_key_id is None:
                raise InvalidInput("key must be an API key id (see GET /v1/keys)", param="key")
        if status and status not in STATUSES:
            raise InvalidInput(f"status must be one of: {', '.join(STATUSES)}", param="status")
        if model is not None and not (0 < len(model) <= MAX_MODEL):
            raise InvalidInput(f"model must be 1-{MAX_MODEL} characters", param="model")
        filters = cls(
            account_id=account_id,
            start=parse_time(start, "from"),
            end=parse_time(end, "to"),
            model=model or None,
            api_key_id=api_key_id,
            status=status or None,
        )
        if filters.start and filters.end and filters.start >= filters.end:
            raise InvalidInput("from must be earlier than to", param="from")
        return filters

    def where(self, first: int = 1) -> tuple[str, list[Any]]:
        """The SQL condition on ``usage_records u`` and its arguments, numbered from ``$first``."""
        args: list[Any] = [self.account_id]
        clauses = [f"u.account_id = ${first}"]
        for column, op, value in (
            ("u.created_at", ">=", self.start),
            ("u.created_at", "<", self.end),
            ("u.model", "=", self.model),
            ("u.api_key_id", "=", self.api_key_id),
            ("u.status", "=", self.status),
        ):
            if value is not None:
                args.append(value)
                clauses.append(f"{column} {op} ${first + len(args) - 1}")
        return " AND ".join(clauses), args

    def public(self) -> UsageFilterValues:
        key = str(self.api_key_id) if self.api_key_id else None
        return UsageFilterValues(start=self.start, end=self.end, model=self.model, key=key, status=self.status)


def parse_time(value: str | None, param: str) -> dt.datetime | None:
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(
            f"{param} must be an ISO 8601 date or time, e.g. 2026-11-01 or 2026-11-01T12:00:00Z", param=param
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


MODERATION_CATEGORIES = """COALESCE(u.moderation_category, (
    SELECT string_agg(c.category, ',' ORDER BY c.category) FROM (
        SELECT category FROM moderation_events WHERE task_id = u.task_id
        UNION SELECT category FROM moderation_events WHERE request_id = u.request_id
    ) c))"""


@dataclass(frozen=True, slots=True)
class UsageRecordRow:
    """A usage record with the prefix of the API key it was made with, as the list and the export show it."""

    id: uuid.UUID
    created_at: dt.datetime
    source: str
    task_id: uuid.UUID | None
    request_id: uuid.UUID | None
    api_key_id: uuid.UUID | None
    api_key_prefix: Annotated[str | None, Column("k.prefix")]
    model: str
    provider: str | None
    kind: str
    status: str
    units: Annotated[dict[str, Any], JSONB]
    credits: int
    latency_ms: int | None
    # a blocked request: the category that blocked it; otherwise the categories (comma-separated) of its
    # moderation events (flagged, or a blocked output), linked by its task or request id
    moderation_category: Annotated[str | None, Column(MODERATION_CATEGORIES)] = None

    def public(self) -> UsageRecord:
        return UsageRecord(
            id=str(self.id),
            object="usage_record",
            created_at=self.created_at,
            source=self.source,
            task_id=str(self.task_id) if self.task_id else None,
            request_id=str(self.request_id) if self.request_id else None,
            api_key_id=str(self.api_key_id) if self.api_key_id else None,
            api_key_prefix=self.api_key_prefix,
            model=self.model,
            provider=self.provider,
            kind=self.kind,
            status=self.status,
            units=self.units or {},
            credits=Credits(self.credits),
            latency_ms=self.latency_ms,
            moderation_category=self.moderation_category,
        )


USAGE_ROWS = RecordMapping(UsageRecordRow, "usage_records u LEFT JOIN api_keys k ON k.id = u.api_key_id", alias="u")


async def list_usage(
    db: Database, filters: UsageFilters, *, limit: int = 50, after: str | None = None
) -> Page[UsageRecord]:
    """Newest first. ``after`` is the ``next_cursor`` of the previous page (a record id)."""
    cursor = page_cursor(limit, after)
    where, args = filters.where()
    if cursor is not None:
        args.append(cursor)
        where += f" AND u.id < ${len(args)}"
    args.append(limit + 1)
    rows = await db.fetch(
        f"SELECT {USAGE_ROWS.columns} FROM {USAGE_ROWS.source} WHERE {where} ORDER BY u.id DESC LIMIT ${len(args)}",
        *args,
    )
    return Page.of(rows, limit, lambda row: USAGE_ROWS.from_row(row).public())


# Counts, credits and units of a group of records (the summary's columns).
_TOTALS = """
    count(*) AS requests,
    count(*) FILTER (WHERE u.status = 'succeeded') AS succeeded,
    count(*) FILTER (WHERE u.status = 'failed') AS failed,
    count(*) FILTER (WHERE u.status = 'canceled') AS canceled,
    count(*) FILTER (WHERE u.status = 'blocked') AS blocked,
    COALESCE(sum(u.credits), 0)::bigint AS credits,
    COALESCE(sum((u.units->>'images')::bigint), 0)::bigint AS images,
    COALESCE(sum((u.units->>'video_seconds')::numeric), 0) AS video_seconds,
    COALESCE(sum((u.units->>'input_tokens')::bigint), 0)::bigint AS input_tokens,
    COALESCE(sum((u.units->>'output_tokens')::bigint), 0)::bigint AS output_tokens,
    COALESCE(sum((u.units->>'requests')::bigint), 0)::bigint AS unit_requests,
    COALESCE(sum((u.units->>'megapixels')::numeric), 0) AS megapixels
"""


def _totals(row: Record) -> dict[str, Any]:
    """The totals' fields of a group (for ``UsageTotals`` and its per-day and per-key subclasses)."""
    units: dict[str, Any] = {}
    for field in UNIT_FIELDS:
        value = row["unit_requests" if field == "requests" else field]
        if value:
            units[field] = float(value) if isinstance(value, Decimal) else value
    return {
        "requests": row["requests"],
        "succeeded": row["succeeded"],
        "failed": row["failed"],
        "canceled": row["canceled"],
        "blocked": row["blocked"],  # refused by the moderation policy
        "credits": Credits(row["credits"]),
        "units": units,
    }


async def summarize_usage(db: Database, filters: UsageFilters) -> UsageSummary:
    """Totals over the filtered records: overall, per UTC day and model, and per API key."""
    where, args = filters.where()
    async with db.connection() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        # One snapshot for the three queries, so that their totals agree with each other.
        total = await conn.fetchrow(f"SELECT {_TOTALS} FROM usage_records u WHERE {where}", *args)
        blocked = await conn.fetch(
            f"""
            SELECT u.moderation_category, count(*) AS blocked FROM usage_records u
            WHERE {where} AND u.status = 'blocked' GROUP BY 1 ORDER BY 1
            """,
            *args,
        )
        flagged = await conn.fetch(
            f"""
            SELECT f.category, count(DISTINCT f.id) AS flagged FROM (
                SELECT u.id, e.category FROM usage_records u JOIN moderation_events e ON e.task_id = u.task_id
                WHERE {where} AND u.status <> 'blocked' AND e.action = 'flagged'
                UNION ALL
                SELECT u.id, e.category FROM usage_records u JOIN moderation_events e ON e.request_id = u.request_id
                WHERE {where} AND u.status <> 'blocked' AND e.action = 'flagged'
            ) f GROUP BY 1 ORDER BY 1
            """,
            *args,
        )
        days = await conn.fetch(
            f"""
            SELECT (u.created_at AT TIME ZONE 'UTC')::date AS day, u.model, {_TOTALS}
            FROM usage_records u WHERE {where}
            GROUP BY 1, 2 ORDER BY 1, 2
            """,
            *args,
        )
        keys = await conn.fetch(
            f"""
            SELECT u.api_key_id, k.prefix, k.name, {_TOTALS}
            FROM {USAGE_ROWS.source} WHERE {where}
            GROUP BY u.api_key_id, k.prefix, k.name ORDER BY credits DESC, u.api_key_id NULLS LAST
            """,
            *args,
        )
    assert total is not None
    return UsageSummary(
        object="usage_summary",
        filters=filters.public(),
        total=UsageGrandTotals(
            **_totals(total),
            blocked_by_category={r["moderation_category"]: r["blocked"] for r in blocked},
            flagged_by_category={r["category"]: r["flagged"] for r in flagged},
        ),
        by_day_and_model=[
            UsageByDayAndModel(date=row["day"].isoformat(), model=row["model"], **_totals(row)) for row in days
        ],
        by_key=[
            UsageByKey(
                api_key_id=str(row["api_key_id"]) if row["api_key_id"] else None,
                api_key_prefix=row["prefix"],
                api_key_name=row["name"],
                **_totals(row),
            )
            for row in keys
        ],
    )
