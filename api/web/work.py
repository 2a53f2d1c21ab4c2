"""The dashboard's work pages: tasks with output previews, the playground, support tickets."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import FromPath, QueryParameter
from litestar.response import Template

from api.deps import ServicesDep
from api.web.context import MemberDep, VisitorDep, page
from api.web.dashboard import DASHBOARD
from api.web.public import catalog
from shared.support import CATEGORIES
from shared.support import queries as tickets
from shared.support.queries import Viewer
from shared.tasks import ACTIVE
from shared.tasks.queries import get_task, list_tasks
from shared.tasks.views import public_task

Text = Annotated[str | None, QueryParameter(max_length=100)]


class WorkPages(Controller):
    path = "/dashboard"
    include_in_schema = False
    dependencies = DASHBOARD

    @get("/tasks")
    async def tasks(
        self,
        visitor: VisitorDep,
        member: MemberDep,
        services: ServicesDep,
        status: Text = None,
        after: Text = None,
    ) -> Template:
        found = await list_tasks(services.db, member.account_id, limit=20, after=after or None, status=status or None)
        shown = [public_task(task, services.signer) for task in found.items]
        return page(
            "dashboard/tasks.html",
            visitor,
            tasks=shown,
            status=status,
            next_cursor=found.next_cursor,
            refresh=any(t.status in ACTIVE for t in shown),
            section="tasks",
        )

    @get("/tasks/{task_id:str}")
    async def task(
        self, visitor: VisitorDep, member: MemberDep, services: ServicesDep, task_id: FromPath[str]
    ) -> Template:
        shown = public_task(await get_task(services.db, member.account_id, task_id), services.signer)
        # an active task's page follows its events (site.js) rather than reloading
        return page("dashboard/task.html", visitor, task=shown, section="tasks")

    @get("/playground")
    async def playground(self, visitor: VisitorDep, member: MemberDep, services: ServicesDep) -> Template:
        models = [m for m in catalog(services) if m.available]
        return page(
            "dashboard/playground.html",
            visitor,
            image_models=[
                m for m in models if m.kind == "image" and "prompt" in m.parameters and "image" not in m.parameters
            ],
            input_image_models=[
                m
                for m in models
                if m.kind == "image"
                and "prompt" in m.parameters
                and m.parameters.get("image", {}).get("type") == "image"
                and not m.parameters.get("mask", {}).get("required")
            ],
            text_models=[m for m in models if m.kind == "text"],
            vision_models=[
                m
                for m in models
                if m.kind == "text" and isinstance(m.capabilities, dict) and m.capabilities.get("vision")
            ],
            section="playground",
        )

    @get("/support")
    async def support(self, visitor: VisitorDep, member: MemberDep, services: ServicesDep) -> Template:
        found = await tickets.list_tickets(services.db, Viewer(member.account_id), limit=50)
        return page(
            "dashboard/support.html",
            visitor,
            tickets=found.items,
            categories=CATEGORIES,
            suggested_category="technical",
            limits=services.settings.support,
            section="support",
        )

    @get("/support/{ticket_id:str}")
    async def ticket(
        self, visitor: VisitorDep, member: MemberDep, services: ServicesDep, ticket_id: FromPath[str]
    ) -> Template:
        found = await tickets.ticket_detail(services.db, ticket_id, Viewer(member.account_id))
        return page("dashboard/ticket.html", visitor, ticket=found, section="support")
