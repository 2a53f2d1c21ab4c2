"""Account deletion by its owner, and suspension by an operator.

Deletion never removes the account row (the ledger, orders, tasks and usage reference it): it marks the
account ``deleted`` and erases what identifies the person — the address, the password hash, linked Google /
GitHub identities, pending mail tokens, key names, task inputs, outputs, metadata and webhook URLs, the
stored input and output files, uploads, and support tickets with their attachments. Keys are revoked and
sessions ended at once on every process; active tasks are canceled (their holds released, their upstream jobs
canceled). The credit ledger and usage records stay, attached to an anonymous id.
"""

from __future__ import annotations

import contextlib
import logging
import uuid

from redis.asyncio import Redis

from shared.accounts import mails
from shared.accounts.key_cache import publish_invalidation
from shared.accounts.keys import Principal, set_account_status
from shared.accounts.signin import PasswordClient, check_password
from shared.accounts.signup import AuthDeps
from shared.batches.files import erase_batch_data
from shared.infra.db import Database
from shared.infra.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from shared.infra.ids import parse_uuid
from shared.infra.queue import JobQueue
from shared.infra.storage import LocalStorage
from shared.ledger import drop_member_reservations
from shared.media.inputs import input_prefix
from shared.media.uploads import erase_uploads
from shared.ratelimits.task_slots import TaskSlots
from shared.support.tickets import erase_tickets
from shared.tasks.cancellation import cancel_task
from shared.teams.members import check_leaving_keeps_owners

log = logging.getLogger(__name__)


async def delete_account(
    deps: AuthDeps,
    queue: JobQueue,
    storage: LocalStorage,
    principal: Principal,
    *,
    password: str | None,
    client: PasswordClient,
) -> None:
    """Erase the caller's account. An account with a password must confirm it. A person deletes their own
    account (acting on it): it is also how they sign in."""
    account_id = principal.account_id
    if account_id != principal.person:
        raise PermissionDenied(
            "only your own account can be deleted: switch back to it first", code="not_your_own_account"
        )
    row = await deps.db.fetchrow("SELECT email, password_hash FROM accounts WHERE id = $1", account_id)
    if row is None or row["email"] is None:
        raise NotFound("account not found", code="account_not_found")
    email: str = row["email"]
    if row["password_hash"] is not None:
        if not password:
            raise InvalidInput(
                "password is required: confirm the deletion with your current password", param="password"
            )
        if not await check_password(deps, email, row["password_hash"], password, client):
            raise InvalidInput(
                "confirm the deletion with your current password", code="invalid_credentials", param="password"
            )
    async with deps.db.transaction() as conn:
        erased = await conn.fetchval(
            """
            UPDATE accounts SET status = 'deleted', email = NULL, password_hash = NULL, deleted_at = now(),
                                updated_at = now()
            WHERE id = $1 AND status <> 'deleted'
            RETURNING id
            """,
            account_id,
        )
        if erased is None:
            raise NotFound("account not found", code="account_not_found")
        await check_leaving_keeps_owners(conn, account_id)  # rolls the deletion back
        await conn.execute("DELETE FROM oauth_identities WHERE account_id = $1", account_id)
        left = await conn.fetch(
            "DELETE FROM account_members WHERE person_id = $1 AND account_id <> $1 RETURNING account_id", account_id
        )
        for membership in left:
            await drop_member_reservations(conn, membership["account_id"], account_id)
        await conn.execute("DELETE FROM account_tokens WHERE account_id = $1", account_id)
        await conn.execute(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()), name = '' WHERE account_id = $1", account_id
        )
    # From here no key, session or new hold works for the account (ledger_place_hold needs 'active').
    await publish_invalidation(queue.redis, f"account:{account_id}")
    await deps.sessions.revoke_all(account_id)
    await _cancel_active_tasks(deps.db, queue, account_id, TaskSlots(deps.limiter))
    scrubbed = await deps.db.fetch(
        """
        UPDATE tasks t SET input = '{}', metadata = '{}', outputs = '[]', webhook_url = NULL, progress = NULL,
                           error_message = CASE WHEN t.error_message IS NULL THEN NULL ELSE '' END
        FROM (SELECT id, outputs <> '[]' AS had_outputs, input::text LIKE '%"inputs/%' AS had_inputs
              FROM tasks WHERE account_id = $1) old
        WHERE t.id = old.id
        RETURNING t.id, old.had_outputs, old.had_inputs
        """,
        account_id,
    )
    await deps.db.execute("DELETE FROM idempotency_records WHERE account_id = $1", account_id)
    for task in scrubbed:
        if task["had_outputs"]:
            await storage.delete_prefix(f"outputs/{task['id']}")
        if task["had_inputs"]:
            await storage.delete_prefix(input_prefix(task["id"]))
    await erase_uploads(deps.db, storage, account_id)  # input media the account uploaded
    await erase_tickets(deps.db, storage, account_id)  # support tickets: threads and attachments
    await erase_batch_data(deps.db, storage, account_id)  # OpenAI Batch API: files, batches' requests and results
    deps.mailer.dispatch(mails.account_deleted(email))
    log.info("account %s deleted by its owner", account_id)


async def _cancel_active_tasks(db: Database, queue: JobQueue, account_id: uuid.UUID, slots: TaskSlots) -> None:
    """Cancel the account's unfinished tasks (holds voided, slots given back) and the upstream jobs they started,
    which would otherwise run on at the operator's cost."""
    rows = await db.fetch("SELECT id FROM tasks WHERE account_id = $1 AND status IN ('queued', 'running')", account_id)
    for row in rows:
        with contextlib.suppress(Conflict, NotFound):  # finished meanwhile
            await cancel_task(db, queue, account_id, row["id"], slots=slots)


async def find_account(db: Database, ident: str) -> uuid.UUID:
    """An account by id or email (operator commands)."""
    parsed = parse_uuid(ident)
    if parsed is not None:
        found = await db.fetchval("SELECT id FROM accounts WHERE id = $1", parsed)
    else:
        found = await db.fetchval("SELECT id FROM accounts WHERE email = $1", ident.strip().lower())
    if found is None:
        raise NotFound(f"no account {ident}", code="account_not_found")
    return found


async def suspend(db: Database, redis: Redis, ident: str, *, suspended: bool, reason: str = "") -> uuid.UUID:
    """Suspend an account (its keys and sessions stop with ``account_suspended``, which tells the ``reason``) or
    reinstate it."""
    account_id = await find_account(db, ident)
    status = "suspended" if suspended else "active"
    if not await set_account_status(db, redis, account_id, status, reason=reason):
        raise Conflict("a deleted account cannot be suspended or reinstated", code="account_deleted")
    return account_id
