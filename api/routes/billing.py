"""/v1/billing: credit packs, checkout, orders, refunds, and Stripe's webhook."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.di import Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from api.contract import raises
from api.deps import ActorDep, PrincipalDep, ServicesDep, provide_actor, provide_principal
from api.input_fields import micro_credits
from api.permissions import requires
from shared.alerts import settings as alert_settings
from shared.billing import receipts
from shared.billing.events import receive_event
from shared.billing.orders import Order, Refund, get_order, list_orders, start_checkout
from shared.billing.products import BillingProduct
from shared.billing.refunds import refund_order
from shared.infra.errors import BillingUnavailable, Conflict, InvalidInput, NotFound, PermissionDenied, UpstreamFailed
from shared.infra.pagination import ListEnvelope, PageEnvelope, list_envelope, page_envelope
from shared.ledger.money import MICRO

ORDER_NOT_FOUND = (NotFound, "order_not_found")


class CheckoutBody(msgspec.Struct, forbid_unknown_fields=True):
    product_id: str


class CheckoutSession(msgspec.Struct):
    """A Stripe Checkout for a pending order: send the buyer to ``url``."""

    object: Literal["billing.checkout"]
    url: str
    order: Order


class RefundWithOrder(Refund):
    """A refund, with its order as it stands afterwards."""

    order: Order


class StripeEventReceived(msgspec.Struct):
    received: bool


class BillingSettingsBody(msgspec.Struct, forbid_unknown_fields=True):
    billing_email: str | None  # null: receipts go to the account's own address


class BillingSettings(msgspec.Struct):
    billing_email: str | None
    object: str = "billing.settings"


class AlertSettingsBody(msgspec.Struct, forbid_unknown_fields=True):
    low_balance_threshold: Decimal | None = None  # credits; null (or left out): no low-balance alert
    budget_thresholds: list[int] = msgspec.field(default_factory=lambda: [80, 100])  # % of a key's period budget


class AlertSettingsView(msgspec.Struct):
    low_balance_threshold: float | None
    budget_thresholds: list[int]
    low_balance_alerted: bool  # below the threshold, alert sent; re-armed once the balance is back above it
    object: str = "billing.alerts"


def _alerts_view(settings: alert_settings.AlertSettings) -> AlertSettingsView:
    threshold = settings.low_balance_threshold
    return AlertSettingsView(threshold / MICRO if threshold is not None else None, settings.budget_percents,
                             settings.low_balance_alerted)  # fmt: skip


class ReceiptRefundView(msgspec.Struct):
    amount: int
    status: str
    created_at: dt.datetime | None  # null: refunded outside Conduit


class ReceiptView(msgspec.Struct):
    number: str
    order_id: str
    buyer: str | None
    paid_at: dt.datetime
    item: str
    credits: float
    amount: int  # minor units of the currency
    currency: str
    amount_tax: int | None
    card_last4: str | None
    amount_refunded: int
    refunds: list[ReceiptRefundView]
    pdf_url: str
    stripe_receipt_url: str | None
    object: str = "billing.receipt"


def _receipt_view(r: receipts.Receipt) -> ReceiptView:
    return ReceiptView(
        number=r.number, order_id=str(r.order_id), buyer=r.buyer, paid_at=r.paid_at, item=r.item,
        credits=r.credits / MICRO, amount=r.amount, currency=r.currency, amount_tax=r.amount_tax,
        card_last4=r.card_last4, amount_refunded=r.amount_refunded,
        refunds=[ReceiptRefundView(x.amount, x.status, x.created_at) for x in r.refunds],
        pdf_url=f"/v1/billing/orders/{r.order_id}/receipt.pdf", stripe_receipt_url=r.stripe_receipt_url,
    )  # fmt: skip


# A change recorded in the account's audit trail: the caller, and the caller as the trail names them
AUDITED = {"principal": Provide(provide_principal), "actor": Provide(provide_actor, sync_to_thread=False)}

RETURN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body style="font-family: sans-serif; max-width: 36em; margin: 4em auto">
<h1>{title}</h1><p>{text}</p></body></html>
"""


class BillingController(Controller):
    path = "/v1/billing"
    tags = ["billing"]

    @get("/products", operation_id="listProducts")
    async def products(self, services: ServicesDep) -> ListEnvelope[BillingProduct]:
        return list_envelope([product.public() for product in services.billing.products])

    @post(
        "/checkout",
        operation_id="createCheckout",
        status_code=201,
        opt=requires("billing.manage"),
        dependencies={"principal": Provide(provide_principal)},
    )
    @raises(
        (InvalidInput, "unknown_product"),
        (PermissionDenied, "account_not_active"),
        BillingUnavailable,
        (UpstreamFailed, "payment_provider_error"),
    )
    async def checkout(
        self, data: JSONBody[CheckoutBody], principal: PrincipalDep, services: ServicesDep
    ) -> CheckoutSession:
        checkout = await start_checkout(
            services.db, services.billing, account_id=principal.account_id, product_id=data.product_id
        )
        return CheckoutSession(object="billing.checkout", url=checkout.url, order=checkout.order)

    @get(
        "/orders",
        operation_id="listOrders",
        opt=requires("billing.read"),
        dependencies={"principal": Provide(provide_principal)},
    )
    async def orders(
        self,
        principal: PrincipalDep,
        services: ServicesDep,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
        after: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
    ) -> PageEnvelope[Order]:
        return page_envelope(
            await list_orders(services.db, principal.account_id, limit=limit, after=after, status=status)
        )

    @get(
        "/orders/{order_id:str}",
        operation_id="getOrder",
        opt=requires("billing.read"),
        dependencies={"principal": Provide(provide_principal)},
    )
    @raises(ORDER_NOT_FOUND)
    async def order(self, principal: PrincipalDep, services: ServicesDep, order_id: FromPath[str]) -> Order:
        return await get_order(services.db, principal.account_id, order_id)

    @post(
        "/orders/{order_id:str}/refund",
        operation_id="refundOrder",
        status_code=200,  # refunded; 202 below
        opt=requires("billing.manage"),
        dependencies=AUDITED,
        responses={
            202: ResponseSpec(
                RefundWithOrder, generate_examples=False, description="Refund recorded; Stripe will be asked again"
            )
        },
    )
    @raises(
        ORDER_NOT_FOUND,
        (Conflict, "order_not_refundable", "refund_window_closed", "nothing_to_refund"),
        BillingUnavailable,
        (UpstreamFailed, "refund_failed"),
    )
    async def refund(
        self, principal: PrincipalDep, actor: ActorDep, services: ServicesDep, order_id: FromPath[str]
    ) -> Response[RefundWithOrder]:
        result = await refund_order(services.db, services.billing.stripe, principal.account_id, order_id, actor=actor)
        refunds = result.order.refunds if isinstance(result.order.refunds, list) else []
        refund = next(r for r in refunds if r.id == str(result.refund_id))
        answer = RefundWithOrder(**msgspec.structs.asdict(refund), order=result.order)
        # 202: the credits are off the balance and the refund is recorded; Stripe will be asked again.
        return Response(answer, status_code=200 if result.status == "succeeded" else 202)

    @get(
        "/orders/{order_id:str}/receipt",
        operation_id="getReceipt",
        opt=requires("billing.read"),
        dependencies={"principal": Provide(provide_principal)},
    )
    @raises(ORDER_NOT_FOUND, (NotFound, "receipt_not_found"))
    async def receipt(self, principal: PrincipalDep, services: ServicesDep, order_id: FromPath[str]) -> ReceiptView:
        """A paid order's receipt: number, date, buyer, item, amounts, tax, card, refunds."""
        return _receipt_view(await receipts.get_receipt(services.db, principal.account_id, order_id))

    @get(
        "/orders/{order_id:str}/receipt.pdf",
        operation_id="getReceiptPdf",
        opt=requires("billing.read"),
        media_type="application/pdf",
        dependencies={"principal": Provide(provide_principal)},
    )
    @raises(ORDER_NOT_FOUND, (NotFound, "receipt_not_found"))
    async def receipt_pdf(
        self, principal: PrincipalDep, services: ServicesDep, order_id: FromPath[str]
    ) -> Response[bytes]:
        """The receipt as a PDF."""
        receipt = await receipts.get_receipt(services.db, principal.account_id, order_id)
        return Response(
            receipts.render_pdf(receipt),
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{receipt.number}.pdf"',
                     "Cache-Control": "private, no-store"},
        )  # fmt: skip

    @get(
        "/settings",
        operation_id="getBillingSettings",
        opt=requires("billing.read"),
        dependencies={"principal": Provide(provide_principal)},
    )
    async def billing_settings(self, principal: PrincipalDep, services: ServicesDep) -> BillingSettings:
        return BillingSettings(await receipts.billing_email(services.db, principal.account_id))

    @put(
        "/settings",
        operation_id="updateBillingSettings",
        opt=requires("billing.manage"),
        dependencies=AUDITED,
    )
    async def set_billing_settings(
        self, actor: ActorDep, services: ServicesDep, data: JSONBody[BillingSettingsBody]
    ) -> BillingSettings:
        """Set the address receipts are addressed to (``null``: the account's own)."""
        return BillingSettings(await receipts.set_billing_email(services.db, actor, data.billing_email))

    @get(
        "/alerts",
        operation_id="getAlertSettings",
        opt=requires("billing.read"),
        dependencies={"principal": Provide(provide_principal)},
    )
    async def alerts(self, principal: PrincipalDep, services: ServicesDep) -> AlertSettingsView:
        return _alerts_view(await alert_settings.get_alert_settings(services.db, principal.account_id))

    @put(
        "/alerts",
        operation_id="updateAlertSettings",
        opt=requires("billing.manage"),
        dependencies=AUDITED,
    )
    async def set_alerts(
        self, actor: ActorDep, services: ServicesDep, data: JSONBody[AlertSettingsBody]
    ) -> AlertSettingsView:
        """Alert owners, admins and billing members (mail, and the account's webhook endpoints that list
        ``account.balance_low`` / ``key.budget_threshold``) when the balance falls below
        ``low_balance_threshold`` credits, and when a key's spend in its budget period reaches each of
        ``budget_thresholds`` percent."""
        threshold = (
            micro_credits(data.low_balance_threshold, "low_balance_threshold", services.settings.input_limits)
            if data.low_balance_threshold is not None
            else None
        )
        changed = await alert_settings.set_alert_settings(
            services.db, actor, low_balance_threshold=threshold, budget_percents=data.budget_thresholds
        )
        return _alerts_view(changed)

    @post("/stripe/webhook", operation_id="receiveStripeEvent", status_code=200)
    @raises((InvalidInput, "invalid_signature", "invalid_event"))
    async def stripe_webhook(self, request: Request[Any, Any, Any], services: ServicesDep) -> StripeEventReceived:
        body = await request.body()
        await receive_event(
            services.db, services.queue, services.billing.stripe, body, request.headers.get("stripe-signature")
        )
        return StripeEventReceived(received=True)

    @get("/return", operation_id="checkoutReturnPage", media_type="text/html")
    async def checkout_return(self, result: FromQuery[str | None] = None) -> str:
        """Where Stripe Checkout sends the buyer back (the default success and cancel URLs)."""
        if result == "success":
            return RETURN_PAGE.format(
                title="Payment received",
                text="Thank you. Your credits are added as soon as Stripe confirms the payment, usually within "
                "seconds; see GET /v1/billing/orders.",
            )
        return RETURN_PAGE.format(title="Checkout canceled", text="No payment was taken. You can close this page.")
