"""The console's moderation page (``/console/moderation``): blocks and flags, newest first, filtered by account,
category, action and review; a button clears a false positive (support staff and admins), another lifts an
account's suspension (admins). Same rules as ``api.web.console``: the page only reads, its buttons call the
review routes (``/v1/admin/moderation``), where each action is checked again and audited."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Controller, get
from litestar.response import Template

from api.deps import ServicesDep
from api.web.console import CONSOLE, Text, console_page
from api.web.context import MemberDep, VisitorDep
from shared.accounts.erasure import find_account
from shared.infra.errors import ConduitError
from shared.moderation.categories import BLOCKED, CATEGORIES, FLAGGED
from shared.moderation.review import EventFilters, list_events


class ConsoleModerationPages(Controller):
    path = "/console"
    include_in_schema = False
    dependencies = CONSOLE

    @get("/moderation")
    async def moderation(
        self,
        visitor: VisitorDep,
        staff: MemberDep,
        services: ServicesDep,
        account: Text = None,
        category: Text = None,
        action: Text = None,
        review: Text = "open",
        after: Text = None,
    ) -> Template:
        query = {"account": account, "category": category, "action": action, "review": review}
        shown = {k: v for k, v in query.items() if v}
        context: dict[str, Any] = {"query": shown, "categories": CATEGORIES, "actions": (BLOCKED, FLAGGED)}
        cleared = {"open": False, "cleared": True}.get(review or "")
        filters = EventFilters(account=account or None, category=category or None, action=action or None,
                               cleared=cleared)  # fmt: skip
        try:
            found = await list_events(services.db, filters, limit=50, after=after or None)
            if account:
                account_id = await find_account(services.db, account)
                row = await services.db.fetchrow(
                    "SELECT id, email, status, suspension_reason FROM accounts WHERE id = $1", account_id
                )
                context["account"] = dict(row) if row is not None else None
        except ConduitError as exc:
            return console_page("console/moderation.html", visitor, staff, "moderation", error=exc.message, **context)
        more = urlencode({**shown, "after": found.next_cursor}) if found.next_cursor else None
        return console_page(
            "console/moderation.html", visitor, staff, "moderation", events=found.items, more=more, **context
        )
