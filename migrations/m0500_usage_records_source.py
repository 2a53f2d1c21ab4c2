from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import UUID, Varchar
from piccolo.columns.indexes import IndexMethod
from piccolo.constraints import Check

ID = "2026-11-22T03:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "usage records: source and request id"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="conduit", description=DESCRIPTION)

    manager.add_column(
        table_class_name="UsageRecord",
        tablename="usage_records",
        column_name="request_id",
        db_column_name="request_id",
        column_class_name="UUID",
        column_class=UUID,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": True,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="UsageRecord",
        tablename="usage_records",
        column_name="source",
        db_column_name="source",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 32,
            "default": "task",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_constraint(
        table_class_name="UsageRecord",
        tablename="usage_records",
        constraint_name="usage_records_source_check",
        constraint_class=Check,
        params={"condition": "source IN ('task', 'chat.completion', 'image.generation')"},
        schema=None,
    )

    manager.add_constraint(
        table_class_name="UsageRecord",
        tablename="usage_records",
        constraint_name="usage_records_status_check",
        constraint_class=Check,
        params={"condition": "status IN ('succeeded', 'failed', 'canceled')"},
        schema=None,
    )

    return manager
