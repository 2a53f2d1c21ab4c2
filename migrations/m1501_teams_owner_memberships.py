"""Every account is an organisation: its founder is its owner. Existing accounts get that membership now, and a
trigger (``shared/ledger/sql/account_founder_membership.sql``) gives it to every account created from now on
(sign-up, OAuth, the command line, invitations), so no path that creates an account can leave it without an
owner. Plus the indexes of the member, invitation and audit lists."""

from shared.infra.db.raw_migrations import sql_migration
from shared.ledger.functions import function_sql

ID = "2026-12-04T15:01:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "teams: founders own their accounts (data and trigger); list indexes"

FORWARDS = [
    """
    INSERT INTO account_members (id, account_id, person_id, role, created_at, updated_at)
    SELECT conduit_uuid7(), id, id, 'owner', created_at, now() FROM accounts
    ON CONFLICT (account_id, person_id) DO NOTHING
    """,
    function_sql("account_founder_membership"),
    """
    CREATE TRIGGER accounts_founder_membership AFTER INSERT ON accounts
    FOR EACH ROW EXECUTE FUNCTION account_founder_membership()
    """,
    "CREATE INDEX account_invitations_pending ON account_invitations (account_id, id DESC) WHERE accepted_at IS NULL",
    "CREATE INDEX account_audit_log_account ON account_audit_log (account_id, id DESC)",
    "CREATE INDEX api_keys_created_by ON api_keys (created_by) WHERE created_by IS NOT NULL",
]
BACKWARDS = [
    "DROP INDEX IF EXISTS api_keys_created_by",
    "DROP INDEX IF EXISTS account_audit_log_account",
    "DROP INDEX IF EXISTS account_invitations_pending",
    "DROP TRIGGER IF EXISTS accounts_founder_membership ON accounts",
    "DROP FUNCTION IF EXISTS account_founder_membership()",
]


async def forwards():
    return sql_migration(ID, DESCRIPTION, forwards=FORWARDS, backwards=BACKWARDS)
