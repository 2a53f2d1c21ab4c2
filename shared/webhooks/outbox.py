"""The transactional outbox of task events.

``record_task_event`` runs inside the transaction that changes the task's status (``shared.tasks.lifecycle``):
one statement inserts the event (with a snapshot of the task row) and one delivery per destination, or
nothing at all when the task has no destination for that event. It also queues a PostgreSQL notification
on ``CHANNEL`` naming the new deliveries (and, while tracing, the trace context of the change, which the
delivery jobs continue); PostgreSQL sends it only if the transaction commits, and the workers' listener
(``dispatch.OutboxListener``) enqueues the delivery jobs. A delivery whose job never got
enqueued (no listener, Redis restarted) is found by the sweep (``dispatch.requeue_due``).

Destinations: every enabled endpoint of the account whose ``events`` include the event type, and, for
terminal events, the task's own ``webhook_url`` (unless an endpoint already has that exact URL).
"""

from __future__ import annotations

import uuid

from shared.infra import tracing
from shared.infra.db import Connection, Database, to_json
from shared.infra.ids import uuid7
from shared.webhooks import TERMINAL_EVENTS

CHANNEL = "conduit_webhook_deliveries"
TRACE_SEPARATOR = "|"  # after the deliveries, the trace context of the event, while tracing
MAX_DESTINATIONS = 16  # endpoints taken per event (the API allows fewer), plus the task's own URL

_RECORD = f"""
WITH task AS (
    SELECT * FROM tasks WHERE id = $1
), endpoints AS (
    SELECT e.id AS endpoint_id, e.url
    FROM webhook_endpoints e JOIN task ON e.account_id = task.account_id
    WHERE e.status = 'enabled' AND $2 = ANY(e.events)
    ORDER BY e.id
    LIMIT {MAX_DESTINATIONS}
), destinations AS (
    SELECT endpoint_id, url FROM endpoints
    UNION ALL
    SELECT NULL::uuid, task.webhook_url FROM task
    WHERE $4 AND task.webhook_url IS NOT NULL AND task.webhook_url NOT IN (SELECT url FROM endpoints)
), numbered AS (
    SELECT endpoint_id, url, row_number() OVER () AS n FROM destinations
), event AS (
    INSERT INTO webhook_events (id, account_id, task_id, type, data)
    SELECT $3, task.account_id, task.id, $2, to_jsonb(task) FROM task
    WHERE EXISTS (SELECT 1 FROM destinations)
    ON CONFLICT (task_id, type) DO NOTHING
    RETURNING id, account_id, task_id
), deliveries AS (
    INSERT INTO webhook_deliveries (id, event_id, account_id, task_id, event_type, endpoint_id, url, status,
                                    next_attempt_at)
    SELECT ($5::uuid[])[numbered.n], event.id, event.account_id, event.task_id, $2, numbered.endpoint_id,
           numbered.url, 'pending', now()
    FROM event CROSS JOIN numbered
    RETURNING id, next_attempt_at
)
SELECT pg_notify(
    $6, string_agg(id::text || ':' || floor(extract(epoch FROM next_attempt_at) * 1000)::bigint, ',') || $7
)
FROM deliveries
HAVING count(*) > 0
"""


def has_destination_sql(event_param: str, *, terminal: bool) -> str:
    """A boolean SQL expression, for the RETURNING clause of the statement that changes a task's status, telling
    whether ``record_task_event`` would find a destination (so it can be skipped when there is none). It reads
    the same rows in the same transaction, so skipping changes nothing; ``event_param`` is the placeholder
    holding the event type."""
    own_url = "tasks.webhook_url IS NOT NULL OR " if terminal else ""
    return (
        f"({own_url}EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.account_id = tasks.account_id "
        f"AND e.status = 'enabled' AND {event_param} = ANY(e.events))) AS has_webhook"
    )


async def record_task_event(db: Connection | Database, task_id: uuid.UUID, event_type: str) -> None:
    """Insert the event and its deliveries (if the task has destinations for it); idempotent per event."""
    await db.execute(
        _RECORD,
        task_id,
        event_type,
        uuid7(),
        event_type in TERMINAL_EVENTS,
        [uuid7() for _ in range(MAX_DESTINATIONS + 1)],
        CHANNEL,
        f"{TRACE_SEPARATOR}{traceparent}" if (traceparent := tracing.current_traceparent()) else "",
    )


_RECORD_ACCOUNT_EVENT = f"""
WITH destinations AS (
    SELECT id AS endpoint_id, url, row_number() OVER (ORDER BY id) AS n
    FROM webhook_endpoints
    WHERE account_id = $1 AND status = 'enabled' AND $2 = ANY(events)
    ORDER BY id LIMIT {MAX_DESTINATIONS}
), event AS (
    INSERT INTO webhook_events (id, account_id, task_id, type, data)
    SELECT $3, $1, NULL, $2, $4::jsonb WHERE EXISTS (SELECT 1 FROM destinations)
    RETURNING id
), deliveries AS (
    INSERT INTO webhook_deliveries (id, event_id, account_id, task_id, event_type, endpoint_id, url, status,
                                    next_attempt_at)
    SELECT ($5::uuid[])[d.n], event.id, $1, NULL, $2, d.endpoint_id, d.url, 'pending', now()
    FROM event CROSS JOIN destinations d
    RETURNING id, next_attempt_at
)
SELECT pg_notify(
    $6, string_agg(id::text || ':' || floor(extract(epoch FROM next_attempt_at) * 1000)::bigint, ',') || $7
)
FROM deliveries
HAVING count(*) > 0
"""


async def record_account_event(
    db: Connection | Database, account_id: uuid.UUID, event_type: str, data: dict[str, object]
) -> uuid.UUID:
    """Insert an account event (an alert, ``data`` its payload) and one delivery per endpoint of the account
    that lists it, in the caller's transaction; nothing when no endpoint does. Returns the event's id."""
    event_id = uuid7()
    await db.execute(
        _RECORD_ACCOUNT_EVENT,
        account_id,
        event_type,
        event_id,
        to_json(data),
        [uuid7() for _ in range(MAX_DESTINATIONS)],
        CHANNEL,
        f"{TRACE_SEPARATOR}{traceparent}" if (traceparent := tracing.current_traceparent()) else "",
    )
    return event_id


def split_trace(payload: str) -> tuple[str, dict[str, str] | None]:
    """A notification's deliveries, and the trace context of the transaction that wrote them (its W3C
    ``traceparent``, after ``TRACE_SEPARATOR``, when that process was tracing)."""
    deliveries, _, traceparent = payload.partition(TRACE_SEPARATOR)
    return deliveries, {"traceparent": traceparent} if traceparent else None


def parse_notification(payload: str) -> list[tuple[uuid.UUID, int]]:
    """``"<delivery id>:<due epoch ms>,..."`` -> [(delivery id, due ms)]; malformed parts are skipped."""
    parsed = []
    for part in payload.split(","):
        delivery_id, _, due_ms = part.partition(":")
        try:
            parsed.append((uuid.UUID(delivery_id), int(due_ms)))
        except ValueError:
            continue
    return parsed
