"""Indexes for listing support tickets: an account's own, and the staff queue by status."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-22T03:20:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "support ticket indexes"

STATEMENTS = [
    "CREATE INDEX support_tickets_account_desc ON support_tickets (account_id, id DESC)",
    "CREATE INDEX support_tickets_status_desc ON support_tickets (status, id DESC)",
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
