"""The operator and support console (``/console``): accounts and tasks.

For staff only: every page checks the role (``support`` reads, ``admin`` also sees the action forms) and that
the session passed a second factor; anyone else gets a 403 page, and nobody signed in is sent to sign in.
Pages only read, through ``shared`` services; their buttons call the admin and staff JSON routes (``/v1/admin``,
``/v1/staff``) with the session's CSRF token, where each action is checked again and audited.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, get
from litestar.di import Provide
from litestar.params import FromPath, QueryParameter
from litestar.response import Template

from api.deps import ServicesDep
from api.web.context import MemberDep, Visitor, VisitorDep, page, provide_member, provide_visitor
from shared.accounts.keys import Principal
from shared.admin.account_view import account_page
from shared.admin.accounts import search_accounts
from shared.admin.task_view import TaskSearch, parse_time, search_tasks, timeline
from shared.admin.tasks import load_task, view_task
from shared.infra.errors import InvalidInput, PermissionDenied
from shared.staff import ADMIN_ROLE, require_staff
from shared.tasks import STATUSES

Text = Annotated[str | None, QueryParameter(max_length=320)]


async def provide_staff_member(member: MemberDep) -> Principal:
    """The signed-in staff member (role and second factor checked), or a 403 page."""
    try:
        require_staff(member)
    except PermissionDenied as exc:
        if exc.code == "second_factor_required":
            raise PermissionDenied(
                "Staff sign in with a second factor. Set up an authenticator app in your dashboard's settings "
                "(/dashboard/settings), then sign out and sign in again with its code.",
                code=exc.code,
            ) from None
        raise PermissionDenied("The console is for Conduit's support and operations staff.", code=exc.code) from None
    return member


CONSOLE = {
    "visitor": Provide(provide_visitor),
    "member": Provide(provide_member),
    "staff": Provide(provide_staff_member),
}


def console_page(template: str, visitor: Visitor, staff: Principal, section: str, **context: Any) -> Template:
    return page(template, visitor, private=True, section=section, is_admin=staff.role == ADMIN_ROLE, **context)


def require_admin_page(staff: Principal) -> None:
    if staff.role != ADMIN_ROLE:
        raise PermissionDenied("Only administrators can see this page.", code="admin_only")


class ConsoleAccountPages(Controller):
    path = "/console"
    include_in_schema = False
    dependencies = CONSOLE

    @get("/")
    async def accounts(
        self, visitor: VisitorDep, staff: MemberDep, services: ServicesDep, q: Text = None, after: Text = None
    ) -> Template:
        """Find an account by email, id, API key prefix or order id."""
        found = await search_accounts(services.db, query=q or None, limit=25, after=after or None)
        return console_page("console/accounts.html", visitor, staff, "accounts", q=q or "", accounts=found)

    @get("/accounts/{account:str}")
    async def account(
        self, visitor: VisitorDep, staff: MemberDep, services: ServicesDep, account: FromPath[str]
    ) -> Template:
        shown = await account_page(services.db, account, services.settings)
        return console_page("console/account.html", visitor, staff, "accounts", account=shown)

    @get("/tasks")
    async def tasks(
        self,
        visitor: VisitorDep,
        staff: MemberDep,
        services: ServicesDep,
        task: Text = None,
        account: Text = None,
        model: Text = None,
        provider: Text = None,
        status: Text = None,
        since: Annotated[str | None, QueryParameter(name="from", max_length=40)] = None,
        until: Annotated[str | None, QueryParameter(name="to", max_length=40)] = None,
        after: Text = None,
    ) -> Template:
        query = {"task": task, "account": account, "model": model, "provider": provider, "status": status,
                 "from": since, "to": until}  # fmt: skip
        context: dict[str, Any] = {"query": {k: v for k, v in query.items() if v}, "statuses": STATUSES,
                                   "providers": services.providers.names()}  # fmt: skip
        try:
            search = TaskSearch(
                task=task or None, account=account or None, model=model or None, provider=provider or None,
                status=status or None, since=parse_time(since, "from"), until=parse_time(until, "to"),
            )  # fmt: skip
            found = await search_tasks(services.db, search, limit=50, after=after or None)
        except InvalidInput as exc:
            return console_page("console/tasks.html", visitor, staff, "tasks", error=exc.message, **context)
        return console_page("console/tasks.html", visitor, staff, "tasks", tasks=found, **context)

    @get("/tasks/{task_id:str}")
    async def task(
        self, visitor: VisitorDep, staff: MemberDep, services: ServicesDep, task_id: FromPath[str]
    ) -> Template:
        shown = await view_task(services.db, services.signer, task_id)
        events = await timeline(services.db, await load_task(services.db, task_id))
        return console_page("console/task.html", visitor, staff, "tasks", task=shown, events=events)
