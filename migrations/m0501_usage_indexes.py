"""Indexes for reading usage records: by time range (list, summary, export), by model and by API key."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-22T03:00:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "usage record indexes"

STATEMENTS = [
    "CREATE INDEX usage_records_account_time ON usage_records (account_id, created_at)",
    "CREATE INDEX usage_records_account_model ON usage_records (account_id, model, id DESC)",
    "CREATE INDEX usage_records_key ON usage_records (api_key_id, id DESC) WHERE api_key_id IS NOT NULL",
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
