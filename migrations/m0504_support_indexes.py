"""Indexes for listing support tickets: an account's own, and the staff queue by status."""

from shared.infra.db.raw_migrations import index_migration

ID = "2026-11-22T03:20:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "support ticket indexes"

STATEMENTS = [
    "CREATE INDEX support_tickets_account_desc ON support_tickets (account_id, id DESC)",
    "CREATE INDEX support_tickets_status_desc ON support_tickets (status, id DESC)",
]


async def forwards():
    return index_migration(ID, DESCRIPTION, STATEMENTS)
