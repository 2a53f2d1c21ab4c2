"""Moderation events: an account's events newest first, its strikes (uncleared blocks) in a window, the review
queue, and the evidence still to purge."""

from shared.infra.db.raw_migrations import index_migration

ID = "2026-12-04T14:00:03:000000"
VERSION = "1.38.0"
DESCRIPTION = "moderation event indexes"

STATEMENTS = [
    "CREATE INDEX moderation_events_account_desc ON moderation_events (account_id, id DESC)",
    "CREATE INDEX moderation_events_strikes ON moderation_events (account_id, created_at) "
    "WHERE action = 'blocked' AND stage = 'input' AND cleared_at IS NULL",
    "CREATE INDEX moderation_events_evidence ON moderation_events (created_at) WHERE excerpt IS NOT NULL",
]


async def forwards():
    return index_migration(ID, DESCRIPTION, STATEMENTS)
