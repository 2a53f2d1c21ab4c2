"""Staff: the audit log of every staff action, canned support replies, and the record of a task's attempts
(what the console's task timeline shows)."""

from __future__ import annotations

from piccolo.columns import JSONB, UUID, ForeignKey, Integer, OnDelete, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Check
from piccolo.table import Table

from shared.infra.db.schema.accounts import Account
from shared.infra.db.schema.tasks import Task


class StaffAuditEntry(Table, tablename="staff_audit_log"):
    """Append-only: a trigger refuses UPDATE and DELETE (``m1201_staff_audit_guard``). ``actor_id`` is a plain
    column, not a foreign key, so that no change to an account can rewrite its history."""

    id = UUID(primary_key=True)
    actor_id = UUID(null=True, default=None)  # NULL: the command line
    actor = Varchar(length=320)  # the staff member's address at the time, or "cli:<user>@<host>"
    role = Varchar(length=16)
    action = Varchar(length=64)  # e.g. "credits.grant", "account.suspend", "ticket.note"
    target_type = Varchar(length=32)
    target_id = Varchar(length=100)
    reason = Text(default="")
    before = JSONB(null=True, default=None)
    after = JSONB(null=True, default=None)
    outcome = Varchar(length=16, default="done")  # "done", or "refused" for an attempt without the right role
    ip = Varchar(length=64, default="")
    via = Varchar(length=16)  # api, console, cli, or strike_rule (an automatic suspension for moderation strikes)
    created_at = Timestamptz(default=TimestamptzNow())

    staff_audit_log_via_check = Check("via IN ('api', 'console', 'cli', 'strike_rule')")
    staff_audit_log_outcome_check = Check("outcome IN ('done', 'refused')")


class SupportCannedReply(Table, tablename="support_canned_replies"):
    """A prepared answer support staff insert into a reply and edit before sending."""

    id = UUID(primary_key=True)
    title = Varchar(length=100, unique=True)
    body = Text()
    created_by = ForeignKey(Account, null=True, on_delete=OnDelete.set_null, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class TaskAttempt(Table, tablename="task_attempts"):
    """One route tried for a task (after its retries): the provider, how it ended and how long it took."""

    id = UUID(primary_key=True)
    task_id = ForeignKey(Task, null=False, on_delete=OnDelete.cascade, index=True)
    provider = Varchar(length=64)
    outcome = Varchar(length=16)
    error_code = Varchar(length=64, null=True, default=None)
    error_message = Text(null=True, default=None)
    upstream_id = Text(null=True, default=None)
    duration_ms = Integer(default=0)
    started_at = Timestamptz(default=TimestamptzNow())

    task_attempts_outcome_check = Check("outcome IN ('succeeded', 'submitted', 'refused', 'failed', 'skipped')")
