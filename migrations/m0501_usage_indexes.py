"""Indexes for reading usage records: by time range (list, summary, export), by model and by API key."""

from shared.infra.db.raw_migrations import index_migration

ID = "2026-11-22T03:00:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "usage record indexes"

STATEMENTS = [
    "CREATE INDEX usage_records_account_time ON usage_records (account_id, created_at)",
    "CREATE INDEX usage_records_account_model ON usage_records (account_id, model, id DESC)",
    "CREATE INDEX usage_records_key ON usage_records (api_key_id, id DESC) WHERE api_key_id IS NOT NULL",
]


async def forwards():
    return index_migration(ID, DESCRIPTION, STATEMENTS)
