"""Usage records: the source check with the OpenAI-compatible embeddings and legacy completions."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.constraints import Check

ID = "2026-11-23T08:00:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "usage records: embedding and text_completion sources"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="conduit", description=DESCRIPTION)
    manager.add_constraint(
        table_class_name="UsageRecord",
        tablename="usage_records",
        constraint_name="usage_records_source_check",
        constraint_class=Check,
        params={
            "condition": "source IN ('task', 'chat.completion', 'image.generation', 'embedding', 'text_completion')"
        },
        schema=None,
    )
    return manager
