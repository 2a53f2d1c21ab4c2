from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Integer
from piccolo.columns.indexes import IndexMethod
from piccolo.constraints import Check

ID = "2026-11-22T03:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "rate limit overrides per account and per API key"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="conduit", description=DESCRIPTION)

    manager.add_column(
        table_class_name="Account",
        tablename="accounts",
        column_name="max_inflight_tasks",
        db_column_name="max_inflight_tasks",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": None,
            "null": True,
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

    manager.add_column(
        table_class_name="Account",
        tablename="accounts",
        column_name="rate_limit_rpm",
        db_column_name="rate_limit_rpm",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": None,
            "null": True,
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

    manager.add_column(
        table_class_name="ApiKey",
        tablename="api_keys",
        column_name="max_inflight_tasks",
        db_column_name="max_inflight_tasks",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": None,
            "null": True,
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

    manager.add_column(
        table_class_name="ApiKey",
        tablename="api_keys",
        column_name="rate_limit_rpm",
        db_column_name="rate_limit_rpm",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": None,
            "null": True,
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
        table_class_name="Account",
        tablename="accounts",
        constraint_name="accounts_rate_limits_check",
        constraint_class=Check,
        params={
            "condition": "(rate_limit_rpm IS NULL OR rate_limit_rpm > 0) AND (max_inflight_tasks IS NULL OR max_inflight_tasks > 0)"
        },
        schema=None,
    )

    manager.add_constraint(
        table_class_name="ApiKey",
        tablename="api_keys",
        constraint_name="api_keys_rate_limits_check",
        constraint_class=Check,
        params={
            "condition": "(rate_limit_rpm IS NULL OR rate_limit_rpm > 0) AND (max_inflight_tasks IS NULL OR max_inflight_tasks > 0)"
        },
        schema=None,
    )

    return manager
