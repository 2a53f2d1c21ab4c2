"""Webhook indexes Piccolo's table definitions cannot express (composite, descending, partial)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-21T22:40:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "webhook indexes"

STATEMENTS = [
    "CREATE INDEX webhook_deliveries_account_desc ON webhook_deliveries (account_id, id DESC)",
    "CREATE INDEX webhook_deliveries_task ON webhook_deliveries (task_id, id DESC)",
    "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending'",
    "CREATE INDEX webhook_events_created ON webhook_events (created_at)",
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
