"""Holds: credits set aside before the work they pay for (a task, a synchronous request), earliest expiry first.

A hold is placed by the ``ledger_place_hold`` SQL function (``sql/ledger_place_hold.sql``): the conditional
UPDATE of the account row that PostgreSQL re-checks after any concurrent hold (so the available balance never
goes below zero), the allocation from the lots that expire first and the ``hold`` ledger entry, in one round
trip. Every hold goes through this module, in one of four ways:

* ``place_hold(conn, hold)``: the call on its own (a request's hold; a task's in tests);
* ``fetchrow_with_hold(conn, statement, *args, hold=hold)``: a caller's statement that places the hold along
  with its own change, e.g. the task submit inserting the task (``hold_call_sql`` is the call to embed);
* ``place_holds(conn, holds)``: the holds of many requests or task submits in one statement
  (``ledger_place_holds``), where a refusal is that hold's outcome, not the batch's error (the group commits of
  chat completions and of task submits);
* ``place_task_holds(conn, account_id, holds)``: the holds of many tasks of one account in one statement
  (``ledger_place_task_holds``), all or nothing, in the caller's transaction that inserted the tasks (a batch
  submit).

A refusal is ``InsufficientCredits`` or ``PermissionDenied`` (the account is suspended or deleted).
Resolving a hold (charging it, releasing it) is ``shared.ledger.settlement``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from shared.infra.db import Connection, Record
from shared.infra.errors import InsufficientCredits, PermissionDenied
from shared.infra.ids import uuid7
from shared.ledger.money import Credits

MAX_HOLDS_PER_STATEMENT = 64  # ledger_place_holds: one subtransaction per hold


@dataclass(frozen=True, slots=True)
class NewHold:
    """A hold to place: ``amount`` micro-credits of the account, for a task (``task_id``) or a request (None)."""

    account_id: uuid.UUID
    amount: int
    task_id: uuid.UUID | None = None
    description: str = ""
    id: uuid.UUID = field(default_factory=uuid7)
    entry_id: uuid.UUID = field(default_factory=uuid7)  # its ``hold`` ledger entry

    def params(self) -> tuple[Any, ...]:
        """The arguments of ``ledger_place_hold``, in the order of ``hold_call_sql``'s parameters."""
        return self.id, self.account_id, self.amount, self.task_id, self.entry_id, self.description


def hold_call_sql(first_param: int) -> str:
    """The call of ``ledger_place_hold`` with ``NewHold.params()`` as parameters ``$first_param`` onwards."""
    return "ledger_place_hold(" + ", ".join(f"${first_param + n}" for n in range(6)) + ")"


_PLACE = f"SELECT {hold_call_sql(1)}"
_PLACE_MANY = "SELECT item, outcome, detail FROM ledger_place_holds($1, $2, $3, $4, $5, $6)"
_PLACE_TASK_HOLDS = "SELECT ledger_place_task_holds($1, $2, $3, $4, $5, $6)"


async def place_hold(conn: Connection | asyncpg.Pool, hold: NewHold) -> uuid.UUID:
    """Place ``hold`` (one round trip). Returns its id. The caller's transaction creates whatever the hold is for
    (e.g. the task row) if it was not created before."""
    await fetchrow_with_hold(conn, _PLACE, hold=hold)
    return hold.id


async def fetchrow_with_hold(
    conn: Connection | asyncpg.Pool, statement: str, *args: Any, hold: NewHold
) -> Record | None:
    """Run a statement that places ``hold`` with ``hold_call_sql(len(args) + 1)`` besides what else it does; the
    hold's parameters follow ``args``. Returns the statement's first row."""
    async with _hold_errors(hold.amount):
        return await conn.fetchrow(statement, *args, *hold.params())


async def place_task_holds(conn: Connection, account_id: uuid.UUID, holds: Sequence[NewHold], *, what: str) -> None:
    """Place the holds of many tasks of ``account_id`` (their rows inserted by the caller's transaction) in one
    statement, all or nothing: a balance that does not cover them all refuses every one, and
    ``InsufficientCredits`` names their total (``what`` says what they are for)."""
    if any(hold.account_id != account_id or hold.task_id is None for hold in holds):
        raise ValueError("place_task_holds places task holds of one account")
    total = sum(hold.amount for hold in holds)
    try:
        await conn.execute(
            _PLACE_TASK_HOLDS,
            account_id,
            [hold.id for hold in holds],
            [hold.amount for hold in holds],
            [hold.task_id for hold in holds],
            [hold.entry_id for hold in holds],
            [hold.description for hold in holds],
        )
    except asyncpg.PostgresError as exc:
        state, detail = getattr(exc, "sqlstate", None), getattr(exc, "detail", None) or ""
        if state == "CD402":
            available = Credits(max(int(detail or 0), 0))
            raise InsufficientCredits(
                f"insufficient credits: {what} need up to {Credits(total)} credits in all and {available} are available"
            ) from None
        error = _refusal(state, detail, total)
        if error is None:
            raise
        raise error from None


async def place_holds(conn: Connection | asyncpg.Pool, holds: Sequence[NewHold]) -> list[uuid.UUID | Exception]:
    """Place many holds in one statement, in account order, one account's together (as if one after the other,
    in order). Each hold's outcome, in order: its id, or its refusal. Raises the statement's error (nothing was
    placed then). A task's row must exist: inserted by the caller's transaction, which then removes the tasks
    whose hold was refused."""
    if len(holds) > MAX_HOLDS_PER_STATEMENT:
        raise ValueError(f"at most {MAX_HOLDS_PER_STATEMENT} holds per statement")
    rows = await conn.fetch(
        _PLACE_MANY,
        [hold.id for hold in holds],
        [hold.account_id for hold in holds],
        [hold.amount for hold in holds],
        [hold.task_id for hold in holds],
        [hold.entry_id for hold in holds],
        [hold.description for hold in holds],
    )
    outcomes: list[uuid.UUID | Exception] = [hold.id for hold in holds]
    for row in rows:
        if row["outcome"] != "placed":
            hold = holds[row["item"] - 1]
            state = "CD402" if row["outcome"] == "insufficient" else "CD403"
            refusal = _refusal(state, row["detail"] or "", hold.amount)
            assert refusal is not None
            outcomes[row["item"] - 1] = refusal
    return outcomes


@contextlib.asynccontextmanager
async def _hold_errors(amount: int) -> AsyncIterator[None]:
    """Turn ``ledger_place_hold``'s SQLSTATEs into domain errors."""
    try:
        yield
    except asyncpg.PostgresError as exc:
        error = _refusal(getattr(exc, "sqlstate", None), getattr(exc, "detail", None) or "", amount)
        if error is None:
            raise
        raise error from None


def _refusal(state: str | None, detail: str, amount: int) -> Exception | None:
    """The domain error of a refused hold: SQLSTATE CD402 (insufficient; detail = spendable micro-credits) or
    CD403 (account not active; detail = its status). None for any other state."""
    if state == "CD402":
        available = max(int(detail or 0), 0)
        return InsufficientCredits(
            f"insufficient credits: this request needs up to {Credits(amount)} credits "
            f"and {Credits(available)} are available"
        )
    if state == "CD403":
        if detail == "suspended":
            return PermissionDenied("this account is suspended; contact support", code="account_suspended")
        return PermissionDenied("this account no longer exists", code="account_deleted")
    return None
