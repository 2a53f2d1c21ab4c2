"""/v1/account/members, /v1/account/invitations, /v1/account/audit: the people of the account, invitations to
join it, and its audit trail; /v1/invitations: what an invitation link opens; /v1/accounts: the accounts the
signed-in person belongs to, and switching between them."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from api.deps import (
    SESSION_COOKIE,
    ActorDep,
    AuthDep,
    PrincipalDep,
    ServicesDep,
    SessionPrincipalDep,
    check_origin,
    provide_actor,
    provide_auth,
    provide_principal,
    provide_session_principal,
    session_caller,
)
from api.permissions import requires
from api.proxies import client_ip
from api.routes.auth import session_cookie
from api.routes.keys import BudgetBody, budget_input
from shared.accounts.keys import Principal
from shared.infra.errors import NotFound, Unauthenticated
from shared.infra.ids import parse_uuid
from shared.ledger.money import MICRO
from shared.services import Services
from shared.staff.audit import AuditTarget
from shared.teams import audit, invitations, members
from shared.teams.audit import AccountAuditEntry


class BudgetView(msgspec.Struct):
    amount: float  # credits per period
    period: str
    reset: str  # calendar or rolling
    spent: float  # this period
    reserved: float  # by pending requests and tasks


class Member(msgspec.Struct):
    person_id: str
    email: str | None
    role: str
    joined_at: dt.datetime
    budget: BudgetView | None  # over their sessions and the keys they created
    budget_remaining: float | None
    resets_at: dt.datetime | None
    object: str = "member"


class MemberList(msgspec.Struct):
    data: list[Member]
    object: str = "list"


class Invitation(msgspec.Struct):
    id: str
    account_id: str
    account_email: str | None
    email: str
    role: str
    status: str
    created_at: dt.datetime
    expires_at: dt.datetime
    object: str = "invitation"


class InvitationList(msgspec.Struct):
    data: list[Invitation]
    object: str = "list"


class AcceptedInvitation(msgspec.Struct):
    account_id: str
    person_id: str
    role: str
    csrf_token: str | None  # the new session's, when accepting created the person and signed them in
    object: str = "invitation_acceptance"


class AuditEntry(msgspec.Struct):
    id: str
    actor: str
    actor_id: str | None
    role: str
    action: str
    target: AuditTarget
    before: dict[str, Any] | None  # the changed fields before and after the change
    after: dict[str, Any] | None
    ip: str
    via: str
    created_at: dt.datetime
    object: str = "account_audit_entry"


class AuditPage(msgspec.Struct):
    data: list[AuditEntry]
    has_more: bool
    next_cursor: str | None
    object: str = "list"


class Membership(msgspec.Struct):
    account_id: str
    email: str | None
    role: str
    status: str
    current: bool
    object: str = "membership"


class MembershipList(msgspec.Struct):
    data: list[Membership]
    object: str = "list"


class MemberUpdateBody(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    role: str | None = None
    budget: BudgetBody | msgspec.UnsetType | None = msgspec.UNSET  # null removes it


class InviteBody(msgspec.Struct, forbid_unknown_fields=True):
    email: str
    role: str = "developer"


class AcceptBody(msgspec.Struct, forbid_unknown_fields=True):
    token: str
    password: str | None = None  # for a person created from the link
    age_confirmed: bool = False


class SwitchBody(msgspec.Struct, forbid_unknown_fields=True):
    account_id: str


def _member(m: members.Member) -> Member:
    state = m.budget
    if state is None:
        return Member(str(m.person_id), m.email, m.role, m.created_at, None, None, None)
    budget = BudgetView(
        state.budget.amount / MICRO,
        state.budget.period,
        "rolling" if state.budget.rolling else "calendar",
        state.spent / MICRO,
        state.reserved / MICRO,
    )
    return Member(str(m.person_id), m.email, m.role, m.created_at, budget, state.remaining / MICRO, state.resets_at)


def _invitation(i: invitations.Invitation) -> Invitation:
    return Invitation(str(i.id), str(i.account_id), i.account_email, i.email, i.role, i.status, i.created_at,
                      i.expires_at)  # fmt: skip


def _audit_entry(e: AccountAuditEntry) -> AuditEntry:
    return AuditEntry(
        id=str(e.id), actor=e.actor, actor_id=str(e.actor_id) if e.actor_id else None, role=e.role, action=e.action,
        target=AuditTarget(e.target_type, e.target_id), before=e.before, after=e.after, ip=e.ip, via=e.via,
        created_at=e.created_at,
    )  # fmt: skip


class MemberController(Controller):
    path = "/v1/account"
    tags = ["members"]
    opt = requires("members.read")
    dependencies = {
        "principal": Provide(provide_session_principal),
        "actor": Provide(provide_actor, sync_to_thread=False),
        "auth": Provide(provide_auth, sync_to_thread=False),
    }

    @get("/members", operation_id="listMembers")
    async def list_members(self, principal: SessionPrincipalDep, services: ServicesDep) -> MemberList:
        return MemberList([_member(m) for m in await members.list_members(services.db, principal.account_id)])

    @patch("/members/{person_id:str}", operation_id="updateMember", opt=requires("members.manage"))
    async def update_member(
        self, actor: ActorDep, services: ServicesDep, person_id: FromPath[str], data: JSONBody[MemberUpdateBody]
    ) -> Member:
        """Give a member another role (only an owner makes or unmakes owners; an account keeps an owner), or a
        budget per period over their sessions and the keys they created (``null`` removes it)."""
        budget = members.UNSET if isinstance(data.budget, msgspec.UnsetType) else budget_input(data.budget, services)
        return _member(
            await members.update_member(services.db, services.redis, actor, person_id, role=data.role, budget=budget)
        )

    @delete("/members/{person_id:str}", operation_id="removeMember", status_code=204, opt=requires("members.manage"))
    async def remove(self, actor: ActorDep, services: ServicesDep, person_id: FromPath[str]) -> None:
        """Remove a member: their sessions on this account end at once; keys they created stay the account's."""
        await members.remove_member(services.db, services.redis, services.sessions, actor, person_id)

    @post("/leave", operation_id="leaveAccount", status_code=204, opt=requires("self"))
    async def leave(self, principal: SessionPrincipalDep, actor: ActorDep, services: ServicesDep) -> None:
        """Leave this account (its last owner cannot)."""
        await members.remove_member(services.db, services.redis, services.sessions, actor, str(principal.person))

    @get("/invitations", operation_id="listInvitations", opt=requires("members.manage"))
    async def list_invitations(self, principal: SessionPrincipalDep, services: ServicesDep) -> InvitationList:
        pending = await invitations.pending_invitations(services.db, principal.account_id)
        return InvitationList([_invitation(i) for i in pending])

    @post("/invitations", operation_id="createInvitation", status_code=201, opt=requires("members.manage"))
    async def invite(self, actor: ActorDep, auth: AuthDep, data: JSONBody[InviteBody]) -> Invitation:
        """Mail ``email`` a link to join this account with ``role``."""
        return _invitation(await invitations.invite(auth, actor, data.email, data.role))

    @post(
        "/invitations/{invitation_id:str}/revoke",
        operation_id="revokeInvitation",
        status_code=200,
        opt=requires("members.manage"),
    )
    async def revoke_invitation(
        self, actor: ActorDep, services: ServicesDep, invitation_id: FromPath[str]
    ) -> Invitation:
        return _invitation(await invitations.revoke(services.db, actor, invitation_id))


class AccountAuditController(Controller):
    path = "/v1/account/audit"
    tags = ["members"]
    opt = requires("audit.read")
    dependencies = {"principal": Provide(provide_principal)}

    @get("/", operation_id="listAccountAudit")
    async def audit_trail(
        self,
        principal: PrincipalDep,
        services: ServicesDep,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 50,
        after: FromQuery[str | None] = None,
        action: Annotated[str | None, QueryParameter(max_length=64)] = None,
    ) -> AuditPage:
        """Member, role, key, budget and billing changes: who, what, when, from which IP. Newest first."""
        page = await audit.entries(services.db, principal.account_id, action=action, limit=limit, after=after)
        return AuditPage([_audit_entry(e) for e in page.items], page.has_more, page.next_cursor)


class InvitationController(Controller):
    """What an invitation link opens; no sign-in needed to look, a session or a new password to accept."""

    path = "/v1/invitations"
    tags = ["members"]
    dependencies = {"auth": Provide(provide_auth, sync_to_thread=False)}

    @get("/lookup", operation_id="lookupInvitation")
    async def lookup(self, services: ServicesDep, token: Annotated[str, QueryParameter(max_length=200)]) -> Invitation:
        return _invitation(await invitations.peek(services.db, token))

    @post("/accept", operation_id="acceptInvitation", status_code=200)
    async def accept(
        self, request: Request, auth: AuthDep, services: ServicesDep, data: JSONBody[AcceptBody]
    ) -> Response[AcceptedInvitation]:
        """Join the account: as the signed-in person (the invited address), or as a new person created with
        ``password`` (then signed in). The session then acts on the account."""
        check_origin(request, services)
        token = request.cookies.get(SESSION_COOKIE)
        caller = await _signed_in(request, services, token)
        accepted = await invitations.accept(
            auth, data.token, person_id=caller.person if caller else None, password=data.password,
            age_confirmed=data.age_confirmed, ip=client_ip(request),
        )  # fmt: skip
        role = (await members.membership_of(services.db, accepted.person_id, accepted.account_id)).role
        cookies = []
        csrf = None
        if caller is not None and token:
            await services.sessions.switch_account(token, accepted.account_id)
        else:
            new_token, session = await services.sessions.create(
                accepted.person_id, ip=client_ip(request), user_agent=request.headers.get("user-agent", "")
            )
            await services.sessions.switch_account(new_token, accepted.account_id)
            cookies.append(session_cookie(auth.settings, new_token, int(session.expires_at - session.created_at)))
            csrf = session.csrf_token
        body = AcceptedInvitation(str(accepted.account_id), str(accepted.person_id), role, csrf)
        return Response(body, cookies=cookies)


async def _signed_in(request: Request, services: Services, token: str | None) -> Principal | None:
    """The person signed in, if the request has a live session (an ended one is as good as none here)."""
    if not token:
        return None
    try:
        return await session_caller(request, services, token)
    except Unauthenticated:
        return None


class MembershipController(Controller):
    """The accounts the signed-in person belongs to; switching the session to one of them (the
    ``X-Conduit-Account`` header does the same for one request)."""

    path = "/v1/accounts"
    tags = ["members"]
    opt = requires("self")
    dependencies = {"principal": Provide(provide_session_principal)}

    @get("/", operation_id="listAccounts")
    async def list_accounts(self, principal: SessionPrincipalDep, services: ServicesDep) -> MembershipList:
        mine = await members.memberships(services.db, principal.person)
        return MembershipList([
            Membership(str(m.account_id), m.email, m.role, m.status, m.account_id == principal.account_id)
            for m in mine
        ])  # fmt: skip

    @post("/switch", operation_id="switchAccount", status_code=200)
    async def switch(
        self, request: Request, principal: SessionPrincipalDep, services: ServicesDep, data: JSONBody[SwitchBody]
    ) -> Membership:
        """Make this session act on another of your accounts (the dashboard's account switcher)."""
        account_id = parse_uuid(data.account_id)
        if account_id is None:
            raise NotFound(f"no account {data.account_id[:64]!r} among yours", code="account_not_found",
                           param="account_id")  # fmt: skip
        m = await members.membership_of(services.db, principal.person, account_id)
        await services.sessions.switch_account(request.cookies.get(SESSION_COOKIE, ""), account_id)
        return Membership(str(m.account_id), m.email, m.role, m.status, True)
