"""Billing indexes Piccolo's table definitions cannot express (composite, partial)."""

from shared.infra.db.raw_migrations import index_migration

ID = "2026-11-21T21:59:32:000000"
VERSION = "1.38.0"
DESCRIPTION = "billing composite and partial indexes"

STATEMENTS = [
    "CREATE INDEX billing_orders_account_desc ON billing_orders (account_id, id DESC)",
    "CREATE INDEX billing_orders_pending ON billing_orders (created_at) WHERE status = 'pending'",
    "CREATE INDEX billing_refunds_pending ON billing_refunds (updated_at) WHERE status = 'pending'",
    "CREATE INDEX stripe_events_pending ON stripe_events (received_at) WHERE status = 'pending'",
]


async def forwards():
    return index_migration(ID, DESCRIPTION, STATEMENTS)
