"""Indexes for the retention and pruning sweeps: finished tasks not purged yet, by completion time; old
idempotency records and account tokens, by age."""

from shared.infra.db.raw_migrations import index_migration

ID = "2026-11-22T06:00:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "retention indexes"

STATEMENTS = [
    "CREATE INDEX tasks_purgeable ON tasks (completed_at) WHERE purged_at IS NULL AND completed_at IS NOT NULL",
    "CREATE INDEX idempotency_records_created ON idempotency_records (created_at)",
    "CREATE INDEX account_tokens_expires ON account_tokens (expires_at)",
]


async def forwards():
    return index_migration(ID, DESCRIPTION, STATEMENTS)
