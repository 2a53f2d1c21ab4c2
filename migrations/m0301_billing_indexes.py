"""Billing indexes Piccolo's table definitions cannot express (composite, partial)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-21T21:59:32:000000"
VERSION = "1.38.0"
DESCRIPTION = "billing composite and partial indexes"

STATEMENTS = [
    "CREATE INDEX billing_orders_account_desc ON billing_orders (account_id, id DESC)",
    "CREATE INDEX billing_orders_pending ON billing_orders (created_at) WHERE status = 'pending'",
    "CREATE INDEX billing_refunds_pending ON billing_refunds (updated_at) WHERE status = 'pending'",
    "CREATE INDEX stripe_events_pending ON stripe_events (received_at) WHERE status = 'pending'",
]


class RawTable(Table):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="conduit", description=DESCRIPTION)

    async def run():
        for statement in STATEMENTS:
            await RawTable.raw(statement)

    async def run_backwards():
        for statement in STATEMENTS:
            name = statement.split()[2]
            await RawTable.raw(f"DROP INDEX IF EXISTS {name}")

    manager.add_raw(run)
    manager.add_raw_backwards(run_backwards)
    return manager
