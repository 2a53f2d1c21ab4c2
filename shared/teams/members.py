"""Members of an account: the list, role changes (ownership is given by making someone an owner), removal,
and the accounts a person belongs to.

Rules every change keeps: only an owner gives or takes away the ``owner`` role (an admin manages the other
roles); an account always keeps at least one owner; a member removed (or who leaves) stops acting on the
account at once: their sessions on it end, and the next request of any other would be refused anyway
(``shared.accounts.sessions.session_principal`` reads the membership). Keys they created stay the account's.
Each change is written to the account's audit trail in its own transaction."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

from shared.accounts.key_cache import publish_invalidation
from shared.accounts.key_limits import CLEAR_BUDGET, SET_BUDGET, BudgetInput, budget_fields, check_budget
from shared.accounts.key_management import UNSET, Unset
from shared.accounts.sessions import SessionStore
from shared.infra.db import Connection, Database, Record
from shared.infra.errors import Conflict, NotFound, PermissionDenied
from shared.infra.ids import parse_uuid
from shared.ledger import drop_member_reservations
from shared.ledger.budgets import BudgetState, PeriodBudget, budget_state
from shared.teams import audit
from shared.teams.audit import AccountActor
from shared.teams.roles import OWNER, check_member_role


@dataclass(frozen=True, slots=True)
class Member:
    person_id: uuid.UUID
    email: str | None
    role: str
    created_at: dt.datetime
    budget: BudgetState | None = None  # their budget per period, over their sessions and the keys they made


@dataclass(frozen=True, slots=True)
class Membership:
    """One account a person belongs to, as the account switcher lists it."""

    account_id: uuid.UUID
    email: str | None  # the account's own address (its founder's)
    role: str
    status: str


MEMBER_SQL = """
    SELECT m.person_id, p.email, m.role, m.created_at, m.budget, m.budget_period, m.budget_rolling,
           m.budget_anchor, m.budget_period_start, m.budget_spent, m.budget_held
    FROM account_members m JOIN accounts p ON p.id = m.person_id
    WHERE m.account_id = $1
"""


def _member(r: Record) -> Member:
    state = None
    if r["budget"] is not None:
        budget = PeriodBudget(r["budget"], r["budget_period"], r["budget_rolling"], r["budget_anchor"])
        state = budget_state(budget, r["budget_period_start"], r["budget_spent"], r["budget_held"])
    return Member(r["person_id"], r["email"], r["role"], r["created_at"], state)


async def list_members(db: Database, account_id: uuid.UUID) -> list[Member]:
    rows = await db.fetch(MEMBER_SQL + " ORDER BY m.created_at, m.id", account_id)
    return [_member(r) for r in rows]


async def memberships(db: Database, person_id: uuid.UUID) -> list[Membership]:
    """The accounts ``person_id`` is a member of (their own first), deleted ones left out."""
    rows = await db.fetch(
        """
        SELECT m.account_id, a.email, m.role, a.status
        FROM account_members m JOIN accounts a ON a.id = m.account_id
        WHERE m.person_id = $1 AND a.status <> 'deleted'
        ORDER BY m.account_id <> $1, m.created_at
        """,
        person_id,
    )
    return [Membership(r["account_id"], r["email"], r["role"], r["status"]) for r in rows]


async def membership_of(db: Database, person_id: uuid.UUID, account_id: uuid.UUID) -> Membership:
    """The person's membership of ``account_id``, or ``NotFound`` (another account is a 404)."""
    for membership in await memberships(db, person_id):
        if membership.account_id == account_id:
            return membership
    raise NotFound(f"no account {account_id} among yours", code="account_not_found", param="account_id")


async def _locked_members(conn: Connection, account_id: uuid.UUID) -> dict[uuid.UUID, str]:
    """Every member's role, with the rows locked: concurrent changes to one account's members go one by one
    (so two owners cannot demote each other at once and leave none)."""
    rows = await conn.fetch(
        "SELECT person_id, role FROM account_members WHERE account_id = $1 ORDER BY id FOR UPDATE", account_id
    )
    return {r["person_id"]: r["role"] for r in rows}


async def _locked_member(
    conn: Connection, account_id: uuid.UUID, person_id: uuid.UUID
) -> tuple[dict[uuid.UUID, str], str]:
    """Every member's role (rows locked, ``_locked_members``) and ``person_id``'s, or ``member_not_found``."""
    members = await _locked_members(conn, account_id)
    role = members.get(person_id)
    if role is None:
        raise NotFound(f"no member {person_id}", code="member_not_found", param="person_id")
    return members, role


def _member_id(person_id: str) -> uuid.UUID:
    parsed = parse_uuid(person_id)
    if parsed is None:
        raise NotFound(f"no member {person_id[:64]!r}", code="member_not_found", param="person_id")
    return parsed


def _check_owner_change(actor: AccountActor, old_role: str, new_role: str | None) -> None:
    if OWNER in (old_role, new_role) and actor.role != OWNER:
        raise PermissionDenied("only an owner can make or unmake owners", code="owner_required")


def _keeps_an_owner(members: dict[uuid.UUID, str], person_id: uuid.UUID, new_role: str | None) -> None:
    owners = {p for p, role in members.items() if role == OWNER}
    if owners == {person_id} and new_role != OWNER:
        raise Conflict(
            "an account needs an owner: make another member an owner first", code="last_owner", param="person_id"
        )


async def check_leaving_keeps_owners(conn: Connection, person_id: uuid.UUID) -> None:
    """Before ``person_id`` leaves every account besides their own (deleting their account): ``last_owner``
    (naming the account) when they are the only owner of one of them, which would be left with no owner."""
    owned = await conn.fetch(
        "SELECT account_id FROM account_members WHERE person_id = $1 AND account_id <> $1 AND role = $2"
        " ORDER BY account_id",
        person_id,
        OWNER,
    )
    for row in owned:
        members = await _locked_members(conn, row["account_id"])
        if {p for p, role in members.items() if role == OWNER} == {person_id}:
            raise Conflict(
                f"you are the only owner of account {row['account_id']}: make another member an owner first",
                code="last_owner",
                param="account_id",
            )


async def update_member(
    db: Database,
    redis: Redis,
    actor: AccountActor,
    person_id: str,
    *,
    role: str | None = None,
    budget: BudgetInput | Unset | None = UNSET,
) -> Member:
    """Give a member another role (``owner`` transfers or shares ownership) and/or set their budget per period
    (``None`` removes it)."""
    if role is not None:
        check_member_role(role)
    period_budget = check_budget(budget) if not isinstance(budget, Unset) else None
    target = _member_id(person_id)
    async with db.transaction() as conn:
        members, old_role = await _locked_member(conn, actor.account_id, target)
        if role is not None and old_role != role:
            _check_owner_change(actor, old_role, role)
            _keeps_an_owner(members, target, role)
            await conn.execute(
                "UPDATE account_members SET role = $3, updated_at = now() WHERE account_id = $1 AND person_id = $2",
                actor.account_id,
                target,
                role,
            )
            await audit.record(conn, actor, "member.role", "member", target, before={"role": old_role},
                               after={"role": role})  # fmt: skip
        if not isinstance(budget, Unset):
            before = _member(await conn.fetchrow(MEMBER_SQL + " AND m.person_id = $2", actor.account_id, target))
            sets = SET_BUDGET.format(amount=3, period=4, rolling=5) if period_budget is not None else CLEAR_BUDGET
            await conn.execute(
                f"UPDATE account_members SET {sets}, updated_at = now() WHERE account_id = $1 AND person_id = $2",
                actor.account_id,
                target,
                *(period_budget or ()),
            )
            after = _member(await conn.fetchrow(MEMBER_SQL + " AND m.person_id = $2", actor.account_id, target))
            await audit.record(conn, actor, "member.budget", "member", target,
                               before=budget_fields(before.budget)["budget"],
                               after=budget_fields(after.budget)["budget"])  # fmt: skip
        row = await conn.fetchrow(MEMBER_SQL + " AND m.person_id = $2", actor.account_id, target)
    if not isinstance(budget, Unset):
        await publish_invalidation(redis, f"account:{actor.account_id}")  # cached keys carry their member's budget
    return _member(row)


async def remove_member(
    db: Database, redis: Redis, sessions: SessionStore, actor: AccountActor, person_id: str
) -> None:
    """Take a member out of the account (a member may also remove themselves: leaving). Their sessions on it end
    at once; the keys they created stay the account's."""
    target = _member_id(person_id)
    async with db.transaction() as conn:
        members, old_role = await _locked_member(conn, actor.account_id, target)
        if target != actor.person_id:
            _check_owner_change(actor, old_role, None)
        _keeps_an_owner(members, target, None)
        await conn.execute(
            "DELETE FROM account_members WHERE account_id = $1 AND person_id = $2", actor.account_id, target
        )
        await drop_member_reservations(conn, actor.account_id, target)
        await audit.record(conn, actor, "member.remove", "member", target, before={"role": old_role})
    await sessions.end_on_account(target, actor.account_id)
    await publish_invalidation(redis, f"account:{actor.account_id}")  # cached keys of theirs: no member budget
