"""The SQL functions, one file each in ``shared/ledger/sql/``: the source of truth for their code (the ledger's,
the trigger that keeps the staff audit log append-only, and the one that makes an account's founder its owner).

Each file is one ``CREATE OR REPLACE FUNCTION`` statement (after its comment) that the migrations run as it
is: ``function_sql(name)`` reads it. ``tests/integration/ledger/test_sql_functions.py`` checks that the
functions of a migrated database are exactly these files and that no other function exists.

To change a function, edit its file and add a migration that runs ``function_sql(name)`` again (databases
migrated before get the new code from it). The migration that first created the function reads the same
file, so a fresh database gets the new code from the start; PL/pgSQL resolves tables when a function runs,
not when it is created, so this is safe as long as the function is not called by a migration in between.
Piccolo's raw SQL treats ``{}`` as a placeholder: the files must not contain it.
"""

from __future__ import annotations

from pathlib import Path

SQL_DIR = Path(__file__).with_name("sql")

# In the order the migrations first create them.
FUNCTIONS = (
    "ledger_place_hold",
    "conduit_uuid7",
    "ledger_resolve_hold",
    "ledger_place_holds",
    "staff_audit_log_append_only",  # not the ledger's: the staff audit log's trigger, kept here with the others
    "ledger_place_task_holds",
    "account_founder_membership",  # not the ledger's either: makes an account's founder its owner (teams)
    "ledger_resolve_holds",
)


def function_sql(name: str) -> str:
    """The ``CREATE OR REPLACE FUNCTION`` statement of ``name`` (``sql/<name>.sql``)."""
    if name not in FUNCTIONS:
        raise ValueError(f"no ledger SQL function {name!r}")
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")
