"""The dashboard's account pages: overview (balance, expiries), API keys, usage, orders, rewards, settings.

Pages read through the same ``shared`` services as the API; their forms call the API (see ``context``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from litestar import Controller, get
from litestar.di import Provide
from litestar.params import FromPath, QueryParameter
from litestar.response import Template

from api.deps import ServicesDep, provide_auth
from api.web.chart import chart_data, chart_days, legend, render_svg
from api.web.context import MemberDep, VisitorDep, page, provide_member, provide_visitor
from shared.accounts import key_management, second_factor
from shared.accounts.rewards import list_reward_grants
from shared.accounts.service import get_account
from shared.accounts.signin import account_has_password
from shared.alerts.settings import get_alert_settings
from shared.billing import receipts
from shared.billing.orders import get_order, list_orders
from shared.infra.errors import InvalidInput
from shared.staff import STAFF_ROLES
from shared.tasks.queries import list_tasks
from shared.tasks.views import public_task
from shared.usage.queries import UsageFilters, list_usage, summarize_usage

Text = Annotated[str | None, QueryParameter(max_length=100)]
DASHBOARD = {"visitor": Provide(provide_visitor), "member": Provide(provide_member)}


def _date(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value[:10]) if value else None
    except ValueError:
        return None


class DashboardPages(Controller):
    path = "/dashboard"
    include_in_schema = False
    dependencies = DASHBOARD

    @get("/")
    async def overview(self, visitor: VisitorDep, member: MemberDep, services: ServicesDep) -> Template:
        account = (await get_account(services.db, member.account_id)).public()
        recent = await list_tasks(services.db, member.account_id, limit=5)
        tasks = [public_task(task, services.signer) for task in recent.items]
        return page("dashboard/overview.html", visitor, account=account, tasks=tasks, section="overview")

    @get("/keys")
    async def keys(self, visitor: VisitorDep, member: MemberDep, services: ServicesDep) -> Template:
        views = await key_management.list_keys(services.db, member.account_id)
        return page("dashboard/keys.html", visitor, keys=[v.public() for v in views], section="keys")

    @get("/usage")
    async def usage(
        self,
        visitor: VisitorDep,
        member: MemberDep,
        services: ServicesDep,
        start: Annotated[str | None, QueryParameter(name="from", max_length=40)] = None,
        end: Annotated[str | None, QueryParameter(name="to", max_length=40)] = None,
        model: Text = None,
        status: Text = None,
        after: Text = None,
    ) -> Template:
        query = {k: v for k, v in {"from": start, "to": end, "model": model, "status": status}.items() if v}
        context: dict[str, Any] = {"section": "usage", "query": query, "export_query": urlencode(query)}
        try:
            filters = UsageFilters.parse(
                member.account_id, start=start, end=end, model=model or None, status=status or None
            )
            records = await list_usage(services.db, filters, limit=50, after=after or None)
            summary = await summarize_usage(services.db, filters)
        except InvalidInput as exc:
            return page("dashboard/usage.html", visitor, 400, error=exc.message, **context)
        days = chart_days(_date(start), _date(end), dt.datetime.now(dt.UTC).date())
        data = chart_data([msgspec.structs.asdict(row) for row in summary.by_day_and_model], days)
        return page(
            "dashboard/usage.html",
            visitor,
            records=records.items,
            next_query=urlencode({**query, "after": records.next_cursor}) if records.next_cursor else None,
            summary=summary,
            chart=render_svg(data),
            chart_empty=data.empty,
            legend=legend(data),
            models=sorted(m.id for m in services.catalog),
            **context,
        )

    @get("/billing")
    async def billing(self, visitor: VisitorDep, member: MemberDep, services: ServicesDep) -> Template:
        orders = (await list_orders(services.db, member.account_id, limit=50)).items
        account = (await get_account(services.db, member.account_id)).public()
        products = [product.public() for product in services.billing.products]
        return page(
            "dashboard/billing.html",
            visitor,
            orders=orders,
            products=products,
            account=account,
            billing_enabled=services.billing.stripe.configured,
            billing_email=await receipts.billing_email(services.db, member.account_id),
            alerts=await get_alert_settings(services.db, member.account_id),
            section="billing",
        )

    @get("/billing/orders/{order_id:str}")
    async def order(
        self, visitor: VisitorDep, member: MemberDep, services: ServicesDep, order_id: FromPath[str]
    ) -> Template:
        found = await get_order(services.db, member.account_id, order_id)
        return page("dashboard/order.html", visitor, order=found, section="billing")

    @get("/billing/return")
    async def checkout_return(
        self,
        visitor: VisitorDep,
        member: MemberDep,
        services: ServicesDep,
        result: Text = None,
        order_id: Text = None,
    ) -> Template:
        """Where Stripe Checkout sends the buyer back: the order as it stands (the page refreshes itself
        while the payment is being confirmed)."""
        found = await get_order(services.db, member.account_id, order_id) if order_id else None
        account = (await get_account(services.db, member.account_id)).public()
        return page("dashboard/return.html", visitor, result=result, order=found, account=account, section="billing")

    @get("/rewards")
    async def rewards(self, visitor: VisitorDep, member: MemberDep, services: ServicesDep) -> Template:
        account = (await get_account(services.db, member.account_id)).public()
        grants = await list_reward_grants(services.db, member.account_id)
        return page("dashboard/rewards.html", visitor, account=account, grants=grants, section="rewards")

    @get("/settings")
    async def settings(self, visitor: VisitorDep, member: MemberDep, services: ServicesDep) -> Template:
        """The person's own settings (sign-in, sessions, second factor), whichever account they act on."""
        account = (await get_account(services.db, member.person)).public()
        sessions = await services.sessions.list(member.person)
        listed = [s.public(current=s.id == member.session_id) for s in sessions]
        auth = provide_auth(services)
        has_password = await account_has_password(auth, member.person)
        return page(
            "dashboard/settings.html",
            visitor,
            account=account,
            sessions=listed,
            has_password=has_password,
            two_step=await second_factor.status(auth, member.person),
            staff_needs_second_factor=member.role in STAFF_ROLES and not member.second_factor,
            section="settings",
        )
