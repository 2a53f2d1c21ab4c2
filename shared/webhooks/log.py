"""The delivery log: every delivery of an account's events with every attempt, and manual redelivery."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec
from redis.exceptions import RedisError

from shared.infra import jobs
from shared.infra.db import Database
from shared.infra.db.records import FILLED_BY_CALLER, Column, RecordMapping
from shared.infra.errors import Conflict, NotFound
from shared.infra.ids import parse_uuid
from shared.infra.pagination import Page, choice_filter, id_filter, page_cursor
from shared.infra.queue import JobQueue
from shared.webhooks import EVENT_TYPES
from shared.webhooks.dispatch import epoch_ms

log = logging.getLogger(__name__)

STATUSES = ("pending", "delivered", "failed")


@dataclass(frozen=True, slots=True)
class WebhookAttempt:
    """One attempt to deliver a webhook, as the API shows it (``response_body``: the start of the answer)."""

    attempt: int
    url: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    status_code: int | None
    latency_ms: int | None
    error: str | None
    response_body: str | None


class WebhookDelivery(msgspec.Struct):
    """A webhook event's delivery to one URL, with its attempts (``event_id``: the webhook-id header of each)."""

    id: str
    object: Literal["webhook_delivery"]
    event_id: str
    event_type: str
    task_id: str | None  # null: an account event (low balance, a key's budget threshold)
    endpoint_id: str | None
    url: str
    status: str
    attempt_count: int
    max_attempts: int
    next_attempt_at: dt.datetime | None
    last_attempt_at: dt.datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: dt.datetime | None
    created_at: dt.datetime
    attempts: list[WebhookAttempt]


@dataclass(frozen=True, slots=True)
class Delivery:
    id: uuid.UUID
    event_id: uuid.UUID
    account_id: uuid.UUID
    task_id: uuid.UUID | None  # None: an account event
    event_type: str
    endpoint_id: uuid.UUID | None
    url: str
    status: str
    attempt_count: Annotated[int, Column("attempts")]
    max_attempts: int
    next_attempt_at: dt.datetime | None
    locked_until: dt.datetime | None
    last_attempt_at: dt.datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: dt.datetime | None
    created_at: dt.datetime
    attempts: Annotated[tuple[WebhookAttempt, ...], FILLED_BY_CALLER] = ()

    def public(self) -> WebhookDelivery:
        return WebhookDelivery(
            id=str(self.id),
            object="webhook_delivery",
            event_id=str(self.event_id),
            event_type=self.event_type,
            task_id=str(self.task_id) if self.task_id else None,
            endpoint_id=str(self.endpoint_id) if self.endpoint_id else None,
            url=self.url,
            status=self.status,
            attempt_count=self.attempt_count,
            max_attempts=self.max_attempts,
            next_attempt_at=self.next_attempt_at,
            last_attempt_at=self.last_attempt_at,
            last_status_code=self.last_status_code,
            last_error=self.last_error,
            delivered_at=self.delivered_at,
            created_at=self.created_at,
            attempts=list(self.attempts),
        )


ATTEMPT_ROWS = RecordMapping(WebhookAttempt, "webhook_attempts")
DELIVERY_ROWS = RecordMapping(Delivery, "webhook_deliveries")


def delivery_not_found(delivery_id: object) -> NotFound:
    return NotFound(f"webhook delivery {delivery_id} not found", code="webhook_delivery_not_found")


async def list_deliveries(
    db: Database,
    account_id: uuid.UUID,
    *,
    limit: int = 20,
    after: str | None = None,
    status: str | None = None,
    task_id: str | uuid.UUID | None = None,
    endpoint_id: str | None = None,
    event_type: str | None = None,
) -> Page[Delivery]:
    """Newest first, each with its attempts. ``after`` is the ``next_cursor`` of the previous page."""
    cursor = page_cursor(limit, after)
    choice_filter(status, STATUSES, "status")
    choice_filter(event_type, EVENT_TYPES, "event_type")
    task = task_id if isinstance(task_id, uuid.UUID) else id_filter(task_id, "task_id")
    endpoint = id_filter(endpoint_id, "endpoint_id")
    rows = await db.fetch(
        f"""
        SELECT {DELIVERY_ROWS.columns} FROM webhook_deliveries
        WHERE account_id = $1
          AND ($2::uuid IS NULL OR id < $2)
          AND ($3::text IS NULL OR status = $3)
          AND ($4::uuid IS NULL OR task_id = $4)
          AND ($5::uuid IS NULL OR endpoint_id = $5)
          AND ($6::text IS NULL OR event_type = $6)
        ORDER BY id DESC
        LIMIT $7
        """,
        account_id,
        cursor,
        status,
        task,
        endpoint,
        event_type,
        limit + 1,
    )
    attempts = await _attempts(db, [row["id"] for row in rows[:limit]])
    return Page.of(rows, limit, lambda row: DELIVERY_ROWS.from_row(row, attempts=attempts.get(row["id"], ())))


async def get_delivery(db: Database, account_id: uuid.UUID, delivery_id: str | uuid.UUID) -> Delivery:
    parsed = delivery_id if isinstance(delivery_id, uuid.UUID) else parse_uuid(delivery_id)
    if parsed is None:
        raise delivery_not_found(delivery_id)
    row = await db.fetchrow(
        f"SELECT {DELIVERY_ROWS.columns} FROM webhook_deliveries WHERE id = $1 AND account_id = $2", parsed, account_id
    )
    if row is None:
        raise delivery_not_found(delivery_id)
    attempts = await _attempts(db, [parsed])
    return DELIVERY_ROWS.from_row(row, attempts=attempts.get(parsed, ()))


async def _attempts(db: Database, delivery_ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[WebhookAttempt, ...]]:
    if not delivery_ids:
        return {}
    rows = await db.fetch(
        f"""
        SELECT delivery_id, {ATTEMPT_ROWS.columns}
        FROM webhook_attempts WHERE delivery_id = ANY($1::uuid[]) ORDER BY delivery_id, attempt, id
        """,
        delivery_ids,
    )
    grouped: dict[uuid.UUID, list[WebhookAttempt]] = {}
    for row in rows:
        grouped.setdefault(row["delivery_id"], []).append(ATTEMPT_ROWS.from_row(row))
    return {key: tuple(value) for key, value in grouped.items()}


async def retry_delivery(db: Database, queue: JobQueue, account_id: uuid.UUID, delivery_id: str) -> Delivery:
    """Send the delivery again now, with the same ``webhook-id``.

    A pending delivery's next attempt is moved to now (its schedule continues if that fails); a delivered or
    failed one gets one more attempt. The endpoint must be enabled."""
    current = await get_delivery(db, account_id, delivery_id)
    async with db.transaction() as conn:
        endpoint_status = None
        if current.endpoint_id is not None:
            endpoint_status = await conn.fetchval(
                "SELECT status FROM webhook_endpoints WHERE id = $1 FOR SHARE", current.endpoint_id
            )
            if endpoint_status != "enabled":
                raise Conflict(
                    f"the endpoint of this delivery is {endpoint_status}; enable it first",
                    code="webhook_endpoint_disabled",
                )
        row = await conn.fetchrow(
            f"""
            UPDATE webhook_deliveries
            SET max_attempts = CASE WHEN status = 'pending' THEN max_attempts ELSE attempts + 1 END,
                status = 'pending', next_attempt_at = now()
            WHERE id = $1 AND account_id = $2 AND (status <> 'pending' OR locked_until IS NULL OR locked_until <= now())
            RETURNING {DELIVERY_ROWS.columns}
            """,
            current.id,
            account_id,
        )
    if row is None:
        raise Conflict("an attempt of this delivery is being sent right now", code="webhook_delivery_in_progress")
    delivery = DELIVERY_ROWS.from_row(row, attempts=current.attempts)
    assert delivery.next_attempt_at is not None
    due_ms = epoch_ms(delivery.next_attempt_at)
    try:
        await queue.enqueue(
            jobs.deliver_webhook(delivery.id, attempts=delivery.attempt_count, due_ms=due_ms, now_ms=due_ms)
        )
    except (OSError, RedisError) as exc:  # the delivery is pending in PostgreSQL: the sweep enqueues it
        log.warning("could not enqueue the retry of delivery %s, the sweep will: %s", delivery.id, exc)
    return delivery
