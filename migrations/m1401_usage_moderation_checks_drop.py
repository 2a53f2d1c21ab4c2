"""Usage records get the ``blocked`` status and the ``moderation`` source: the old checks go here, the new ones,
under the same names, in m1402 (Piccolo adds constraints before it drops them within one migration)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-04T14:00:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "usage records: drop the status and source checks"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="conduit", description=DESCRIPTION)
    for name in ("usage_records_status_check", "usage_records_source_check"):
        manager.drop_constraint(table_class_name="UsageRecord", tablename="usage_records", constraint_name=name,
                                schema=None)  # fmt: skip
    return manager
