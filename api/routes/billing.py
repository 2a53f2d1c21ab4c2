"""/v1/billing: credit packs, checkout, orders, refunds, and Stripe's webhook."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from api.deps import PrincipalDep, ServicesDep, provide_principal
from api.permissions import requires
from shared.billing.events import receive_event
from shared.billing.orders import get_order, list_orders, start_checkout
from shared.billing.refunds import refund_order
from shared.infra.pagination import list_envelope, page_envelope


class CheckoutBody(msgspec.Struct, forbid_unknown_fields=True):
    product_id: str


RETURN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body style="font-family: sans-serif; max-width: 36em; margin: 4em auto">
<h1>{title}</h1><p>{text}</p></body></html>
"""


class BillingController(Controller):
    path = "/v1/billing"
    tags = ["billing"]

    @get("/products")
    async def products(self, services: ServicesDep) -> dict[str, Any]:
        return list_envelope([product.public() for product in services.billing.products])

    @post(
        "/checkout",
        status_code=201,
        opt=requires("billing.manage"),
        dependencies={"principal": Provide(provide_principal)},
    )
    async def checkout(
        self, data: JSONBody[CheckoutBody], principal: PrincipalDep, services: ServicesDep
    ) -> dict[str, Any]:
        checkout = await start_checkout(
            services.db, services.billing, account_id=principal.account_id, product_id=data.product_id
        )
        return {"object": "billing.checkout", "url": checkout.url, "order": checkout.order}

    @get("/orders", opt=requires("billing.read"), dependencies={"principal": Provide(provide_principal)})
    async def orders(
        self,
        principal: PrincipalDep,
        services: ServicesDep,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
        after: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
    ) -> dict[str, Any]:
        return page_envelope(
            await list_orders(services.db, principal.account_id, limit=limit, after=after, status=status)
        )

    @get("/orders/{order_id:str}", opt=requires("billing.read"), dependencies={"principal": Provide(provide_principal)})
    async def order(self, principal: PrincipalDep, services: ServicesDep, order_id: FromPath[str]) -> dict[str, Any]:
        return await get_order(services.db, principal.account_id, order_id)

    @post(
        "/orders/{order_id:str}/refund",
        opt=requires("billing.manage"),
        dependencies={"principal": Provide(provide_principal)},
    )
    async def refund(
        self, principal: PrincipalDep, services: ServicesDep, order_id: FromPath[str]
    ) -> Response[dict[str, Any]]:
        result = await refund_order(services.db, services.billing.stripe, principal.account_id, order_id)
        refund = next(r for r in result.order["refunds"] if r["id"] == str(result.refund_id))
        # 202: the credits are off the balance and the refund is recorded; Stripe will be asked again.
        return Response({**refund, "order": result.order}, status_code=200 if result.status == "succeeded" else 202)

    @post("/stripe/webhook", status_code=200)
    async def stripe_webhook(self, request: Request[Any, Any, Any], services: ServicesDep) -> dict[str, Any]:
        body = await request.body()
        await receive_event(
            services.db, services.queue, services.billing.stripe, body, request.headers.get("stripe-signature")
        )
        return {"received": True}

    @get("/return", media_type="text/html")
    async def checkout_return(self, result: FromQuery[str | None] = None) -> str:
        """Where Stripe Checkout sends the buyer back (the default success and cancel URLs)."""
        if result == "success":
            return RETURN_PAGE.format(
                title="Payment received",
                text="Thank you. Your credits are added as soon as Stripe confirms the payment, usually within "
                "seconds; see GET /v1/billing/orders.",
            )
        return RETURN_PAGE.format(title="Checkout canceled", text="No payment was taken. You can close this page.")
