"""/v1/billing: credit packs, checkout, orders, refunds, and Stripe's webhook."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from api.contract import raises
from api.deps import PrincipalDep, ServicesDep, provide_principal
from shared.billing.events import receive_event
from shared.billing.orders import Order, Refund, get_order, list_orders, start_checkout
from shared.billing.products import BillingProduct
from shared.billing.refunds import refund_order
from shared.infra.errors import BillingUnavailable, Conflict, InvalidInput, NotFound, PermissionDenied, UpstreamFailed
from shared.infra.pagination import ListEnvelope, PageEnvelope, list_envelope, page_envelope

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

    @get("/orders", operation_id="listOrders", dependencies={"principal": Provide(provide_principal)})
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

    @get("/orders/{order_id:str}", operation_id="getOrder", dependencies={"principal": Provide(provide_principal)})
    @raises(ORDER_NOT_FOUND)
    async def order(self, principal: PrincipalDep, services: ServicesDep, order_id: FromPath[str]) -> Order:
        return await get_order(services.db, principal.account_id, order_id)

    @post(
        "/orders/{order_id:str}/refund",
        operation_id="refundOrder",
        status_code=200,  # refunded; 202 below
        dependencies={"principal": Provide(provide_principal)},
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
        self, principal: PrincipalDep, services: ServicesDep, order_id: FromPath[str]
    ) -> Response[RefundWithOrder]:
        result = await refund_order(services.db, services.billing.stripe, principal.account_id, order_id)
        refunds = result.order.refunds if isinstance(result.order.refunds, list) else []
        refund = next(r for r in refunds if r.id == str(result.refund_id))
        answer = RefundWithOrder(**msgspec.structs.asdict(refund), order=result.order)
        # 202: the credits are off the balance and the refund is recorded; Stripe will be asked again.
        return Response(answer, status_code=200 if result.status == "succeeded" else 202)

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
