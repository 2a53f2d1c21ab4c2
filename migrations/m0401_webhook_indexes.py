"""Webhook indexes Piccolo's table definitions cannot express (composite, descending, partial)."""

from shared.infra.db.raw_migrations import index_migration

ID = "2026-11-21T22:40:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "webhook indexes"

STATEMENTS = [
    "CREATE INDEX webhook_deliveries_account_desc ON webhook_deliveries (account_id, id DESC)",
    "CREATE INDEX webhook_deliveries_task ON webhook_deliveries (task_id, id DESC)",
    "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending'",
    "CREATE INDEX webhook_events_created ON webhook_events (created_at)",
]


async def forwards():
    return index_migration(ID, DESCRIPTION, STATEMENTS)
