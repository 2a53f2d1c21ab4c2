"""/v1/admin (continued): providers' circuits, billing (orders, refunds, Stripe events), and the staff audit log
(JSON and CSV). Admins only, like the rest of the admin API; every action is audited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, TypeAlias

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Stream

from api.contract import raises
from api.deps import ServicesDep
from api.permissions import requires
from api.routes.admin import ADMIN, ActorDep
from shared.admin import billing as admin_billing
from shared.admin.providers import queue_overview, set_circuit
from shared.admin.views import (
    AccountOrder,
    OrderRefund,
    ProviderCircuit,
    QueueOverview,
    RetriedStripeEvent,
    StripeEvent,
)
from shared.infra.errors import BillingUnavailable, Conflict, NotFound, UpstreamFailed
from shared.infra.pagination import ListEnvelope, PageEnvelope, list_envelope, page_envelope
from shared.staff import audit

Limit = Annotated[int, QueryParameter(ge=1, le=100)]
Text = Annotated[str | None, QueryParameter(max_length=320)]
PROVIDER_NOT_FOUND = (NotFound, "provider_not_found")


class CircuitBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: str = ""


class RefundBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: str


def provide_audit_filters(
    target_type: Text = None, target_id: Text = None, actor: Text = None, action: Text = None
) -> audit.AuditFilters:
    """The audit log's filters (the list, its export and the console page): each empty one is no filter."""
    return audit.AuditFilters(target_type or None, target_id or None, actor or None, action or None)


AuditFiltersDep: TypeAlias = NamedDependency[audit.AuditFilters]


class AdminOperationsController(Controller):
    opt = requires("staff")
    path = "/v1/admin"
    tags = ["admin"]
    dependencies = ADMIN

    @get("/queue", operation_id="getQueue")
    async def queue(self, admin: ActorDep, services: ServicesDep) -> QueueOverview:
        """Tasks queued and running, and the oldest queued one."""
        return await queue_overview(services.db)

    @post("/providers/{name:str}/circuit/open", operation_id="openProviderCircuit", status_code=200)
    @raises(PROVIDER_NOT_FOUND)
    async def open_circuit(
        self, admin: ActorDep, services: ServicesDep, name: FromPath[str], data: JSONBody[CircuitBody]
    ) -> ProviderCircuit:
        """Open a provider's circuit by hand (``reason`` required): its routes are skipped until it is closed."""
        return await set_circuit(services.providers, services.db, name, open_it=True, actor=admin, reason=data.reason)

    @post("/providers/{name:str}/circuit/close", operation_id="closeProviderCircuit", status_code=200)
    @raises(PROVIDER_NOT_FOUND)
    async def close_circuit(
        self, admin: ActorDep, services: ServicesDep, name: FromPath[str], data: JSONBody[CircuitBody]
    ) -> ProviderCircuit:
        return await set_circuit(services.providers, services.db, name, open_it=False, actor=admin, reason=data.reason)

    @get("/orders", operation_id="listAllOrders")
    async def orders(
        self, admin: ActorDep, services: ServicesDep, status: Text = None, limit: Limit = 50, after: Text = None
    ) -> PageEnvelope[AccountOrder]:
        """Every account's orders, newest first."""
        return page_envelope(await admin_billing.list_orders(services.db, status=status, limit=limit, after=after))

    @post("/orders/{order_id:str}/refund", operation_id="refundAnyOrder", status_code=200)
    @raises(
        (NotFound, "order_not_found"),
        (Conflict, "order_not_refundable", "refund_window_closed", "nothing_to_refund"),
        BillingUnavailable,
        (UpstreamFailed, "refund_failed"),
    )
    async def refund(
        self, admin: ActorDep, services: ServicesDep, order_id: FromPath[str], data: JSONBody[RefundBody]
    ) -> OrderRefund:
        """Refund the order's unused credits on its owner's behalf (the owner's refund rules apply)."""
        return await admin_billing.start_refund(
            services.db, services.billing.stripe, order_id, actor=admin, reason=data.reason
        )

    @get("/stripe-events", operation_id="listStripeEvents")
    async def stripe_events(
        self, admin: ActorDep, services: ServicesDep, status: Text = None, limit: Limit = 50
    ) -> ListEnvelope[StripeEvent]:
        return list_envelope(await admin_billing.list_events(services.db, status=status, limit=limit))

    @post("/stripe-events/{event_id:str}/retry", operation_id="retryStripeEvent", status_code=200)
    @raises((NotFound, "stripe_event_not_found"), (Conflict, "stripe_event_not_failed"))
    async def retry_event(self, admin: ActorDep, services: ServicesDep, event_id: FromPath[str]) -> RetriedStripeEvent:
        """Process a failed Stripe event again now; answers how it went (``status``, ``last_error``)."""
        return await admin_billing.retry_event(services.db, services.billing.stripe, event_id, actor=admin)

    @get(
        "/audit",
        operation_id="listAuditEntries",
        dependencies={"filters": Provide(provide_audit_filters, sync_to_thread=False)},
    )
    async def audit_log(
        self, admin: ActorDep, services: ServicesDep, filters: AuditFiltersDep, limit: Limit = 50, after: Text = None
    ) -> PageEnvelope[audit.StaffAuditEntry]:
        """The staff audit log, newest first; filters ``target_type``, ``target_id``, ``actor`` (part of an
        address) and ``action`` (a prefix: ``credits.``)."""
        page = await audit.entries(services.db, filters, limit=limit, after=after)
        return page_envelope(page.map(audit.AuditEntry.public))

    @get(
        "/audit/export",
        operation_id="exportAuditEntries",
        media_type="text/csv",
        dependencies={"filters": Provide(provide_audit_filters, sync_to_thread=False)},
    )
    async def audit_export(self, admin: ActorDep, services: ServicesDep, filters: AuditFiltersDep) -> Stream:
        """The same entries as CSV, oldest first, streamed."""
        lines: AsyncIterator[str] = audit.csv_lines(services.db, filters)
        return Stream(
            lines,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="staff-audit-log.csv"', "Cache-Control": "no-store"},
        )
