"""The staff audit log is append-only in the database itself: a trigger refuses every UPDATE and DELETE (and
TRUNCATE), whoever runs it (its function: ``shared/ledger/sql/staff_audit_log_append_only.sql``). Plus the
indexes of the console's lists."""

from shared.infra.db.raw_migrations import sql_migration
from shared.ledger.functions import function_sql

ID = "2026-12-04T05:52:14:000000"
VERSION = "1.38.0"
DESCRIPTION = "staff audit log: append-only trigger; console indexes"

FORWARDS = [
    function_sql("staff_audit_log_append_only"),
    """
    CREATE TRIGGER staff_audit_log_no_change BEFORE UPDATE OR DELETE ON staff_audit_log
    FOR EACH ROW EXECUTE FUNCTION staff_audit_log_append_only()
    """,
    """
    CREATE TRIGGER staff_audit_log_no_truncate BEFORE TRUNCATE ON staff_audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION staff_audit_log_append_only()
    """,
    "CREATE INDEX staff_audit_log_target ON staff_audit_log (target_type, target_id, id DESC)",
    "CREATE INDEX staff_audit_log_actor ON staff_audit_log (actor_id, id DESC)",
    "CREATE INDEX support_tickets_assignee ON support_tickets (assignee_id, id DESC) WHERE assignee_id IS NOT NULL",
]
BACKWARDS = [
    "DROP INDEX IF EXISTS support_tickets_assignee",
    "DROP INDEX IF EXISTS staff_audit_log_actor",
    "DROP INDEX IF EXISTS staff_audit_log_target",
    "DROP TRIGGER IF EXISTS staff_audit_log_no_truncate ON staff_audit_log",
    "DROP TRIGGER IF EXISTS staff_audit_log_no_change ON staff_audit_log",
    "DROP FUNCTION IF EXISTS staff_audit_log_append_only()",
]


async def forwards():
    return sql_migration(ID, DESCRIPTION, forwards=FORWARDS, backwards=BACKWARDS)
