"""The billing objects a process keeps for its lifetime (part of ``shared.services.Services``)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.billing.products import ProductCatalog, load_products
from shared.billing.stripe_gateway import StripeGateway
from shared.settings import Settings


@dataclass(slots=True)
class Billing:
    products: ProductCatalog
    stripe: StripeGateway
    success_url: str
    cancel_url: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Billing:
        return cls(
            products=load_products(settings.billing_products_path),
            stripe=StripeGateway(settings),
            success_url=settings.resolved_checkout_success_url,
            cancel_url=settings.resolved_checkout_cancel_url,
        )

    async def close(self) -> None:
        await self.stripe.close()
