"""The console (continued): providers and the queue, the support queue and a ticket's thread, billing, the
staff audit log and the staff list. Same rules as ``api.web.console``."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, get
from litestar.di import Provide
from litestar.params import FromPath, QueryParameter
from litestar.response import Template

from api.deps import ServicesDep
from api.routes.admin_ops import AuditFiltersDep, provide_audit_filters
from api.web.console import CONSOLE, Text, console_page, require_admin_page
from api.web.context import MemberDep, VisitorDep
from shared.admin import billing as admin_billing
from shared.admin.providers import provider_health, queue_overview
from shared.infra.errors import InvalidInput
from shared.infra.ids import parse_uuid
from shared.staff import audit
from shared.support import CATEGORIES, STATUSES
from shared.support import queries as tickets
from shared.support.queries import Viewer
from shared.support.staff import canned_replies
from worker.heartbeat import live_workers

Hours = Annotated[int | None, QueryParameter(ge=0, le=100_000)]


class ConsoleOperationsPages(Controller):
    path = "/console"
    include_in_schema = False
    dependencies = CONSOLE

    @get("/providers")
    async def providers(self, visitor: VisitorDep, staff: MemberDep, services: ServicesDep) -> Template:
        """Each provider's circuit, error rate and latency over the last hour; the queue; live workers."""
        return console_page(
            "console/providers.html",
            visitor,
            staff,
            "providers",
            providers=await provider_health(services.db, services.providers),
            queue=await queue_overview(services.db),
            workers=await live_workers(services.redis),
        )

    @get("/support")
    async def support(
        self,
        visitor: VisitorDep,
        staff: MemberDep,
        services: ServicesDep,
        status: Text = "open",
        category: Text = None,
        assignee: Text = None,
        older_than_hours: Hours = None,
        after: Text = None,
    ) -> Template:
        query = {"status": status, "category": category, "assignee": assignee, "older_than_hours": older_than_hours}
        shown = {k: v for k, v in query.items() if v not in (None, "")}
        context: dict[str, Any] = {"query": shown, "statuses": STATUSES, "categories": CATEGORIES}
        try:
            found = await tickets.list_tickets(
                services.db, Viewer(staff.account_id, staff=True), status=status or None, category=category or None,
                assignee=assignee or None, older_than_hours=older_than_hours, limit=50, after=after or None,
            )  # fmt: skip
        except InvalidInput as exc:
            return console_page("console/support.html", visitor, staff, "support", error=exc.message, **context)
        more = urlencode({**shown, "after": found.next_cursor}) if found.next_cursor else None
        return console_page(
            "console/support.html", visitor, staff, "support", tickets=found.items, more=more, **context
        )

    @get("/support/{ticket_id:str}")
    async def ticket(
        self, visitor: VisitorDep, staff: MemberDep, services: ServicesDep, ticket_id: FromPath[str]
    ) -> Template:
        viewer = Viewer(staff.account_id, staff=True)
        found = await tickets.ticket_detail(services.db, ticket_id, viewer)
        owner = await services.db.fetchval("SELECT email FROM accounts WHERE id = $1", parse_uuid(found.account_id))
        staff_members = await services.db.fetch(
            "SELECT id, email FROM accounts WHERE role IN ('support', 'admin') AND status = 'active' ORDER BY email"
        )
        return console_page(
            "console/ticket.html",
            visitor,
            staff,
            "support",
            ticket=found,
            owner=owner,
            staff_members=staff_members,
            canned=await canned_replies(services.db),
            statuses=STATUSES,
        )

    @get("/billing")
    async def billing(
        self,
        visitor: VisitorDep,
        staff: MemberDep,
        services: ServicesDep,
        status: Text = None,
        events: Text = None,
        after: Text = None,
    ) -> Template:
        """Orders and refunds across accounts; Stripe events (``events``: a status, e.g. ``failed``)."""
        try:
            orders = await admin_billing.list_orders(services.db, status=status or None, limit=50, after=after or None)
            stripe_events = await admin_billing.list_events(services.db, status=events or None, limit=50)
        except InvalidInput as exc:
            return console_page("console/billing.html", visitor, staff, "billing", error=exc.message)
        return console_page(
            "console/billing.html",
            visitor,
            staff,
            "billing",
            orders=orders,
            refunds=await admin_billing.list_refunds(services.db, limit=20),
            events=stripe_events,
            status=status or "",
            events_status=events or "",
        )

    @get("/audit", dependencies={"filters": Provide(provide_audit_filters, sync_to_thread=False)})
    async def audit_log(
        self, visitor: VisitorDep, staff: MemberDep, services: ServicesDep, filters: AuditFiltersDep, after: Text = None
    ) -> Template:
        """The staff audit log (administrators), with its CSV export."""
        require_admin_page(staff)
        found = await audit.entries(services.db, filters, limit=50, after=after or None)
        shown = {k: v for k, v in dataclasses.asdict(filters).items() if v}
        more = urlencode({**shown, "after": found.next_cursor}) if found.next_cursor else None
        return console_page(
            "console/audit.html", visitor, staff, "audit", entries=found.items, query=shown,
            export_query=urlencode(shown), more=more,
        )  # fmt: skip

    @get("/staff")
    async def staff_list(self, visitor: VisitorDep, staff: MemberDep, services: ServicesDep) -> Template:
        """Staff accounts and their roles (administrators grant and take back roles here)."""
        require_admin_page(staff)
        members = await services.db.fetch(
            """
            SELECT id, email, role, status, totp_enabled_at IS NOT NULL AS second_factor FROM accounts
            WHERE role IN ('support', 'admin') ORDER BY role, email
            """
        )
        return console_page("console/staff.html", visitor, staff, "staff", members=members)
