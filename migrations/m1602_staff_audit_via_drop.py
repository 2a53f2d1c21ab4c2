"""The staff audit log's ``via`` gets ``strike_rule`` (an account suspended automatically for its moderation
strikes): the old check goes here, the new one, under the same name, in m1603 (Piccolo adds constraints before
it drops them within one migration)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-04T16:35:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "staff audit log: drop the via check"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="conduit", description=DESCRIPTION)
    manager.drop_constraint(table_class_name="StaffAuditEntry", tablename="staff_audit_log",
                            constraint_name="staff_audit_log_via_check", schema=None)  # fmt: skip
    return manager
