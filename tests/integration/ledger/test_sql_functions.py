"""The SQL functions of a migrated database are exactly the files in ``shared/ledger/sql/``: the files are the
source of truth, and no migration defines a function any other way."""

from __future__ import annotations

from shared.infra.db import Connection
from shared.ledger.functions import FUNCTIONS, SQL_DIR, function_sql
from shared.services import Services

SCRATCH = "ledger_sql_files"


async def definitions(conn: Connection, schema: str) -> dict[str, str]:
    """The definition PostgreSQL stores of each function in ``schema`` (its header and its code), by name, with
    the schema's name taken out."""
    rows = await conn.fetch(
        """
        SELECT p.proname, pg_get_functiondef(p.oid) AS definition
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = $1 AND p.prokind = 'f'
        """,
        schema,
    )
    return {row["proname"]: row["definition"].replace(f"{schema}.", "") for row in rows}


def test_every_file_is_a_known_function() -> None:
    assert sorted(path.stem for path in SQL_DIR.glob("*.sql")) == sorted(FUNCTIONS)


async def test_the_migrated_functions_are_the_files(services: Services) -> None:
    async with services.db.transaction() as conn:
        migrated = await definitions(conn, "public")
        # The files as the migrations run them, in a schema of their own that the transaction drops again.
        await conn.execute(f"CREATE SCHEMA {SCRATCH}")
        await conn.execute(f"SET LOCAL search_path = {SCRATCH}, public")
        for name in FUNCTIONS:
            await conn.execute(function_sql(name))
        from_files = await definitions(conn, SCRATCH)
        await conn.execute(f"DROP SCHEMA {SCRATCH} CASCADE")

    assert sorted(from_files) == sorted(FUNCTIONS)
    assert sorted(migrated) == sorted(FUNCTIONS), "a migration defines a function that is not in shared/ledger/sql/"
    for name in FUNCTIONS:
        assert migrated[name] == from_files[name], f"{name} in the database differs from sql/{name}.sql"
