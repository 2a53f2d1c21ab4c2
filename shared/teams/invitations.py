"""Invitations: an owner or admin invites an address to the account with a role; the mail carries a single-use,
expiring link (a random token of which only the SHA-256 is stored, like the verification and reset links of
``shared.accounts.tokens``).

Accepting it (``accept``) makes the person a member:
* signed in as the invited address: the membership is added to that person;
* not signed in, and the address has no account yet: the person is created from the link (with the password
  they choose; the link proves they read the address, so it counts as verified) and becomes a member;
* the address has an account but the caller is not signed in as it: ``sign_in_to_accept``.

An invitation stops working once accepted, revoked (``revoke``), replaced by a newer one to the same address,
or expired (``INVITATION_TTL_S``)."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass

from shared.accounts.passwords import check_password_policy, hash_password
from shared.accounts.service import normalize_email
from shared.accounts.signup import AuthDeps
from shared.accounts.tokens import token_hash, well_formed
from shared.infra.db import Connection, Database, Record
from shared.infra.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Unauthenticated
from shared.infra.ids import parse_uuid, uuid7
from shared.infra.mail import Mail
from shared.ratelimits.signin_throttle import throttle_ip, throttle_mail
from shared.teams import audit
from shared.teams.audit import AccountActor
from shared.teams.roles import OWNER, check_member_role

MAX_PENDING = 100


@dataclass(frozen=True, slots=True)
class Invitation:
    id: uuid.UUID
    account_id: uuid.UUID
    account_email: str | None  # the inviting account's own address, to tell the invitee which account it is
    email: str
    role: str
    created_at: dt.datetime
    expires_at: dt.datetime
    status: str  # pending, accepted, revoked, expired


@dataclass(frozen=True, slots=True)
class Accepted:
    account_id: uuid.UUID
    person_id: uuid.UUID
    created_person: bool  # the person was created from the link (no session yet)


_INVITATION_SQL = """
    SELECT i.id, i.account_id, a.email AS account_email, a.status AS account_status, i.email, i.role, i.created_at,
           i.expires_at,
           CASE WHEN i.accepted_at IS NOT NULL THEN 'accepted' WHEN i.revoked_at IS NOT NULL THEN 'revoked'
                WHEN i.expires_at <= now() THEN 'expired' ELSE 'pending' END AS status
    FROM account_invitations i JOIN accounts a ON a.id = i.account_id
"""


def _invitation(r: Record | None) -> Invitation:
    assert r is not None
    return Invitation(
        r["id"], r["account_id"], r["account_email"], r["email"], r["role"], r["created_at"], r["expires_at"],
        r["status"],
    )  # fmt: skip


def invalid_invitation() -> InvalidInput:
    return InvalidInput(
        "this invitation is invalid, has expired, was revoked or was already used", code="invalid_invitation",
        param="token",
    )  # fmt: skip


def invitation_mail(deps: AuthDeps, invitation: Invitation, token: str, inviter: str | None) -> Mail:
    link = deps.settings.invitation_url.replace("{token}", token)
    days = deps.settings.invitation_ttl_s / 86400
    who = inviter or "A member"
    return Mail(
        to=invitation.email,
        subject="You are invited to a Conduit account",
        text=f"""Hello,

{who} invited you to join the Conduit account of {invitation.account_email or "a team"} as {invitation.role}.
Members share the account's credit balance, keys and tasks. To accept, open this link:

{link}

If you have no Conduit account yet, you choose a password there. The link works once and expires in
{days:g} day{"" if days == 1 else "s"}. If you did not expect this, ignore this mail.
""",
    )


async def invite(deps: AuthDeps, actor: AccountActor, email: str, role: str) -> Invitation:
    """Invite ``email`` with ``role`` (an owner only may invite owners) and mail the link. A newer invitation to
    the same address replaces a pending one."""
    email = normalize_email(email)
    check_member_role(role)
    if role == OWNER and actor.role != OWNER:
        raise PermissionDenied("only an owner can invite owners", code="owner_required")
    await throttle_mail(deps.limiter, email)  # like sign-up's mails: an address is not flooded with invitations
    token = secrets.token_urlsafe(32)
    async with deps.db.transaction() as conn:
        member = await conn.fetchval(
            """
            SELECT 1 FROM account_members m JOIN accounts p ON p.id = m.person_id
            WHERE m.account_id = $1 AND p.email = $2
            """,
            actor.account_id,
            email,
        )
        if member:
            raise Conflict(f"{email} is already a member of this account", code="already_member", param="email")
        pending = await conn.fetchval(
            "SELECT count(*) FROM account_invitations WHERE account_id = $1 AND accepted_at IS NULL"
            " AND revoked_at IS NULL AND expires_at > now()",
            actor.account_id,
        )
        if pending >= MAX_PENDING:
            raise Conflict(f"at most {MAX_PENDING} invitations can wait at once", code="too_many_invitations")
        await conn.execute(
            """
            UPDATE account_invitations SET revoked_at = now()
            WHERE account_id = $1 AND email = $2 AND accepted_at IS NULL AND revoked_at IS NULL
            """,
            actor.account_id,
            email,
        )
        invitation_id = uuid7()
        await conn.execute(
            """
            INSERT INTO account_invitations (id, account_id, email, role, token_hash, invited_by, expires_at)
            VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))
            """,
            invitation_id, actor.account_id, email, role, token_hash(token), actor.person_id,
            float(deps.settings.invitation_ttl_s),
        )  # fmt: skip
        await audit.record(conn, actor, "member.invite", "invitation", invitation_id, after={"email": email,
                           "role": role})  # fmt: skip
        invitation = _invitation(await conn.fetchrow(_INVITATION_SQL + " WHERE i.id = $1", invitation_id))
        inviter = await conn.fetchval("SELECT email FROM accounts WHERE id = $1", actor.person_id)
    deps.mailer.dispatch(invitation_mail(deps, invitation, token, inviter))
    return invitation


async def pending_invitations(db: Database, account_id: uuid.UUID) -> list[Invitation]:
    rows = await db.fetch(
        _INVITATION_SQL + " WHERE i.account_id = $1 AND i.accepted_at IS NULL AND i.revoked_at IS NULL"
        " ORDER BY i.id DESC",
        account_id,
    )
    return [_invitation(r) for r in rows]


async def revoke(db: Database, actor: AccountActor, invitation_id: str) -> Invitation:
    """Revoke a pending invitation: its link stops working. Another account's invitation is a 404."""
    parsed = parse_uuid(invitation_id)
    async with db.transaction() as conn:
        revoked = parsed is not None and await conn.fetchval(
            """
            UPDATE account_invitations SET revoked_at = now()
            WHERE id = $1 AND account_id = $2 AND accepted_at IS NULL AND revoked_at IS NULL RETURNING id
            """,
            parsed,
            actor.account_id,
        )
        if not revoked:
            raise NotFound(f"no pending invitation {invitation_id}", code="invitation_not_found",
                           param="invitation_id")  # fmt: skip
        await audit.record(conn, actor, "member.invitation_revoke", "invitation", parsed)
        row = await conn.fetchrow(_INVITATION_SQL + " WHERE i.id = $1", parsed)
    return _invitation(row)


async def peek(db: Database, token: str) -> Invitation:
    """The pending invitation a link carries (to show before accepting), or ``invalid_invitation``."""
    row = None
    if well_formed(token):
        row = await db.fetchrow(_INVITATION_SQL + " WHERE i.token_hash = $1", token_hash(token))
    if row is None or row["status"] != "pending" or row["account_status"] == "deleted":
        raise invalid_invitation()
    return _invitation(row)


async def accept(
    deps: AuthDeps,
    token: str,
    *,
    person_id: uuid.UUID | None,
    password: str | None = None,
    age_confirmed: bool = False,
    ip: str = "",
) -> Accepted:
    """Use an invitation: the signed-in person (``person_id``), or a person created from the link, joins."""
    invitation = await peek(deps.db, token)
    created = False
    if person_id is not None:
        email = await deps.db.fetchval("SELECT email FROM accounts WHERE id = $1", person_id)
        if email != invitation.email:
            raise PermissionDenied(
                f"this invitation is for {invitation.email}; sign in with that address to accept it",
                code="invitation_for_another_address",
            )
    else:
        if await deps.db.fetchval("SELECT 1 FROM accounts WHERE email = $1", invitation.email):
            raise Unauthenticated(
                f"{invitation.email} already has a Conduit account: sign in with it, then open the link again",
                code="sign_in_to_accept",
            )
        if age_confirmed is not True:
            raise InvalidInput("you must confirm that you are at least 18 years old",
                               code="age_confirmation_required", param="age_confirmed")  # fmt: skip
        if not password:
            raise InvalidInput("choose a password for your new account", code="weak_password", param="password")
        check_password_policy(password, email=invitation.email)
        await throttle_ip(deps.limiter, deps.settings, ip)  # creating a person: throttled like sign-up
        password_hash = await hash_password(password)
    async with deps.db.transaction() as conn:
        if person_id is None:
            person_id = await _create_person(conn, invitation.email, password_hash)
            created = True
        used = await conn.fetchval(
            """
            UPDATE account_invitations SET accepted_at = now(), accepted_by = $2
            WHERE token_hash = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()
            RETURNING id
            """,
            token_hash(token),
            person_id,
        )
        if used is None:  # used or revoked by a concurrent request: nothing happens (the person too rolls back)
            raise invalid_invitation()
        await conn.execute(
            """
            INSERT INTO account_members (id, account_id, person_id, role, invited_by)
            SELECT $1, $2, $3, role, invited_by FROM account_invitations WHERE id = $4
            ON CONFLICT (account_id, person_id) DO NOTHING
            """,
            uuid7(), invitation.account_id, person_id, invitation.id,
        )  # fmt: skip
        joined = AccountActor(invitation.account_id, person_id, None, invitation.role, "dashboard", ip)
        await audit.record(conn, joined, "member.join", "member", person_id, after={"role": invitation.role,
                           "invitation_id": str(invitation.id)})  # fmt: skip
    return Accepted(invitation.account_id, person_id, created)


async def _create_person(conn: Connection, email: str, password_hash: str) -> uuid.UUID:
    person_id = await conn.fetchval(
        """
        INSERT INTO accounts (id, email, password_hash, age_confirmed_at, email_verified_at)
        VALUES ($1, $2, $3, now(), now())
        ON CONFLICT (email) DO NOTHING RETURNING id
        """,
        uuid7(),
        email,
        password_hash,
    )
    if person_id is None:  # signed up meanwhile
        raise Unauthenticated(
            f"{email} already has a Conduit account: sign in with it, then open the link again",
            code="sign_in_to_accept",
        )
    return person_id
