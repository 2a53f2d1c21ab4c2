"""The dashboard's team pages: members and invitations (with the switcher between the person's accounts), the
account's audit trail, and the page an invitation mail links to.

Like every page they only read; their forms call the JSON API (``api.routes.members``), whose role checks
apply. The audit page is for owners and admins (``audit.read``)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import Provide
from litestar.params import QueryParameter
from litestar.response import Template

from api.deps import ServicesDep
from api.web.context import MemberDep, VisitorDep, page, provide_member, provide_visitor
from shared.infra.errors import InvalidInput
from shared.teams import audit, invitations, members
from shared.teams.roles import MEMBER_ROLES, allowed, check_permission

Token = Annotated[str, QueryParameter(max_length=200)]


class TeamPages(Controller):
    path = "/"
    include_in_schema = False
    dependencies = {"visitor": Provide(provide_visitor), "member": Provide(provide_member)}

    @get("/dashboard/members")
    async def members_page(self, visitor: VisitorDep, member: MemberDep, services: ServicesDep) -> Template:
        manage = allowed(member.member_role, "members.manage")
        return page(
            "dashboard/members.html",
            visitor,
            members=await members.list_members(services.db, member.account_id),
            invitations=await invitations.pending_invitations(services.db, member.account_id) if manage else [],
            accounts=await members.memberships(services.db, member.person),
            manage=manage,
            roles=MEMBER_ROLES,
            section="members",
        )

    @get("/dashboard/audit")
    async def audit_page(
        self, visitor: VisitorDep, member: MemberDep, services: ServicesDep, after: Token = ""
    ) -> Template:
        check_permission(member.member_role, "audit.read")
        entries = await audit.entries(services.db, member.account_id, limit=50, after=after or None)
        return page("dashboard/audit.html", visitor, entries=entries, section="audit")

    @get("/invitation")
    async def invitation(self, visitor: VisitorDep, services: ServicesDep, token: Token = "") -> Template:
        """The link in an invitation mail: who invites whom, and the form that accepts it."""
        try:
            found = await invitations.peek(services.db, token)
        except InvalidInput as exc:
            return page("invitation.html", visitor, 400, invitation=None, message=exc.message)
        return page("invitation.html", visitor, invitation=found, token=token)
