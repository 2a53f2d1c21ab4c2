"""Usage records: the ``blocked`` status (a request refused by the moderation policy) and the ``moderation``
source (``POST /v1/moderations``)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.constraints import Check

ID = "2026-12-04T14:00:02:000000"
VERSION = "1.38.0"
DESCRIPTION = "usage records: blocked status, moderation source"

CHECKS = {
    "usage_records_status_check": "status IN ('succeeded', 'failed', 'canceled', 'blocked')",
    "usage_records_source_check": (
        "source IN ('task', 'chat.completion', 'image.generation', 'embedding', 'text_completion', 'moderation')"
    ),
}


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="conduit", description=DESCRIPTION)
    for name, condition in CHECKS.items():
        manager.add_constraint(table_class_name="UsageRecord", tablename="usage_records", constraint_name=name,
                               constraint_class=Check, params={"condition": condition}, schema=None)  # fmt: skip
    return manager
