"""Hand-written migrations: SQL that Piccolo's table definitions cannot express (composite, descending and
partial indexes; SQL functions). A migration module declares its statements and calls ``sql_migration``:

    async def forwards():
        return sql_migration(ID, DESCRIPTION, forwards=STATEMENTS, backwards=["DROP INDEX ..."])

``index_migration`` derives the backwards statements of a list of ``CREATE INDEX`` statements.
"""

from __future__ import annotations

from collections.abc import Sequence

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

APP_NAME = "conduit"


class _Raw(Table):
    """Only a handle for running raw SQL on the migration's engine."""


def sql_migration(
    migration_id: str, description: str, *, forwards: Sequence[str], backwards: Sequence[str] = ()
) -> MigrationManager:
    manager = MigrationManager(migration_id=migration_id, app_name=APP_NAME, description=description)

    async def run() -> None:
        for statement in forwards:
            await _Raw.raw(statement)

    async def run_backwards() -> None:
        for statement in backwards:
            await _Raw.raw(statement)

    manager.add_raw(run)
    manager.add_raw_backwards(run_backwards)
    return manager


def index_migration(migration_id: str, description: str, statements: Sequence[str]) -> MigrationManager:
    """``CREATE INDEX <name> ...`` statements; going backwards drops them in reverse order."""
    drops = [f"DROP INDEX IF EXISTS {statement.split()[2]}" for statement in reversed(statements)]
    return sql_migration(migration_id, description, forwards=statements, backwards=drops)
