"""Usage records get two more sources (``embedding``, ``text_completion``): the old check goes here, and the new
one, under the same name, in m0801 (Piccolo adds constraints before it drops them within one migration)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-23T08:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "usage records: drop the source check"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="conduit", description=DESCRIPTION)
    manager.drop_constraint(
        table_class_name="UsageRecord",
        tablename="usage_records",
        constraint_name="usage_records_source_check",
        schema=None,
    )
    return manager
