"""Moderation events name the synchronous request they were about (``request_id``: its usage record's), so a
flagged chat completion or embedding shows its categories on its usage record; indexes for that lookup by task
and by request."""

from shared.infra.db.raw_migrations import sql_migration

ID = "2026-12-04T16:40:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "moderation events: request_id, lookups by task and request"


async def forwards():
    return sql_migration(
        ID,
        DESCRIPTION,
        forwards=[
            "ALTER TABLE moderation_events ADD COLUMN request_id uuid NULL DEFAULT NULL",
            "CREATE INDEX moderation_events_task ON moderation_events (task_id) WHERE task_id IS NOT NULL",
            "CREATE INDEX moderation_events_request ON moderation_events (request_id) WHERE request_id IS NOT NULL",
        ],
        backwards=[
            "DROP INDEX IF EXISTS moderation_events_request",
            "DROP INDEX IF EXISTS moderation_events_task",
            "ALTER TABLE moderation_events DROP COLUMN IF EXISTS request_id",
        ],
    )
