"""/v1/usage: the caller's usage records, their summary and a CSV export (same filters for all three)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, TypeAlias

from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery, QueryParameter
from litestar.response import Stream

from api.deps import PrincipalDep, ServicesDep, provide_principal
from api.permissions import requires
from shared.infra.pagination import PageEnvelope, page_envelope
from shared.usage.export import export_csv
from shared.usage.queries import UsageFilters, list_usage, summarize_usage
from shared.usage.views import UsageRecord, UsageSummary

From = Annotated[str | None, QueryParameter(name="from", description="inclusive; ISO 8601 date or time (UTC)")]
To = Annotated[str | None, QueryParameter(name="to", description="exclusive; ISO 8601 date or time (UTC)")]
Key = Annotated[str | None, QueryParameter(name="key", description="an API key id")]
Status = Annotated[str | None, QueryParameter(name="status", description="succeeded, failed or canceled")]
FiltersDep: TypeAlias = NamedDependency[UsageFilters]


def provide_filters(
    principal: PrincipalDep,
    start: From = None,
    end: To = None,
    model: FromQuery[str | None] = None,
    key: Key = None,
    status: Status = None,
) -> UsageFilters:
    """The filters shared by the list, the summary and the export, for the caller's own records."""
    return UsageFilters.parse(principal.account_id, start=start, end=end, model=model, key=key, status=status)


class UsageController(Controller):
    opt = requires("usage.read")
    path = "/v1/usage"
    tags = ["usage"]
    dependencies = {
        "principal": Provide(provide_principal),
        "filters": Provide(provide_filters, sync_to_thread=False),
    }

    @get("/", operation_id="listUsage")
    async def list_usage(
        self,
        filters: FiltersDep,
        services: ServicesDep,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 50,
        after: FromQuery[str | None] = None,
    ) -> PageEnvelope[UsageRecord]:
        """Usage records, newest first: one per model request (succeeded, failed or canceled)."""
        return page_envelope(await list_usage(services.db, filters, limit=limit, after=after))

    @get("/summary", operation_id="getUsageSummary")
    async def summary(self, filters: FiltersDep, services: ServicesDep) -> UsageSummary:
        """Totals (requests by status, credits, units): overall, per UTC day and model, and per API key."""
        return await summarize_usage(services.db, filters)

    @get("/export", operation_id="exportUsage", media_type="text/csv")
    async def export(self, filters: FiltersDep, services: ServicesDep) -> Stream:
        """The filtered records as CSV, oldest first, streamed (any size)."""
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        return Stream(
            export_csv(services.db, services.background, filters),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="conduit-usage-{stamp}.csv"',
                "Cache-Control": "no-store",
            },
        )
