"""The staff audit log's ``via``: ``strike_rule`` besides the staff channels (an automatic suspension for
moderation strikes is recorded with the rule as its actor)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.constraints import Check

ID = "2026-12-04T16:35:02:000000"
VERSION = "1.38.0"
DESCRIPTION = "staff audit log: via check with strike_rule"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="conduit", description=DESCRIPTION)
    manager.add_constraint(table_class_name="StaffAuditEntry", tablename="staff_audit_log",
                           constraint_name="staff_audit_log_via_check", constraint_class=Check,
                           params={"condition": "via IN ('api', 'console', 'cli', 'strike_rule')"},
                           schema=None)  # fmt: skip
    return manager
