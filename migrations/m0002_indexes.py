"""Indexes Piccolo's table definitions cannot express (composite, descending, partial)."""

from shared.infra.db.raw_migrations import index_migration

ID = "2026-11-21T21:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "composite and partial indexes"

STATEMENTS = [
    "CREATE INDEX tasks_account_id_desc ON tasks (account_id, id DESC)",
    "CREATE INDEX tasks_active ON tasks (status, created_at) WHERE status IN ('queued', 'running')",
    "CREATE INDEX credit_lots_spendable ON credit_lots (account_id, expires_at) WHERE remaining > 0",
    "CREATE INDEX credit_lots_expiring ON credit_lots (expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL",
    "CREATE INDEX ledger_entries_account_desc ON ledger_entries (account_id, id DESC)",
    "CREATE INDEX usage_records_account_desc ON usage_records (account_id, id DESC)",
    "CREATE INDEX holds_pending ON holds (account_id) WHERE status = 'pending'",
]


async def forwards():
    return index_migration(ID, DESCRIPTION, STATEMENTS)
