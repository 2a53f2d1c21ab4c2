"""The public pages: home, model catalog, pricing, the API quick start, terms and privacy."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import Provide
from litestar.params import FromPath, QueryParameter
from litestar.response import Template

from api.deps import ServicesDep
from api.web.context import VisitorDep, page, provide_visitor
from shared.catalog import KINDS
from shared.catalog.views import CatalogModel, public_model
from shared.infra.errors import NotFound
from shared.ledger.money import Credits
from shared.services import Services


def catalog(services: Services, kind: str | None = None, query: str | None = None) -> list[CatalogModel]:
    """The models as ``GET /v1/models`` shows them, filtered by kind and by a word in id, name or description."""
    models = [
        public_model(m, available=services.providers.available(m), route_usable=services.providers.usable)
        for m in services.catalog
    ]
    if kind:
        models = [m for m in models if m.kind == kind]
    if query:
        needle = query.strip().lower()
        models = [m for m in models if needle in f"{m.id} {m.name} {m.description}".lower()]
    return models


class PublicPages(Controller):
    path = "/"
    include_in_schema = False
    dependencies = {"visitor": Provide(provide_visitor)}

    @get("/")
    async def home(self, visitor: VisitorDep, services: ServicesDep) -> Template:
        models = catalog(services)
        counts = {kind: sum(1 for m in models if m.kind == kind) for kind in KINDS}
        return page("home.html", visitor, counts=counts, featured=models[:6], settings=services.settings)

    @get("/models")
    async def models(
        self,
        visitor: VisitorDep,
        services: ServicesDep,
        kind: Annotated[str | None, QueryParameter(max_length=20)] = None,
        q: Annotated[str | None, QueryParameter(max_length=100)] = None,
    ) -> Template:
        kind = kind if kind in KINDS else None
        return page("models.html", visitor, models=catalog(services, kind, q), kind=kind, q=q or "", kinds=KINDS)

    @get("/models/{model_id:str}")
    async def model(self, visitor: VisitorDep, services: ServicesDep, model_id: FromPath[str]) -> Template:
        """One model: its parameters and, per route, the provider and how it takes each parameter."""
        found = services.catalog.get(model_id)
        if found is None:
            raise NotFound(f"model {model_id!r} does not exist", code="model_not_found")
        shown = public_model(
            found, available=services.providers.available(found), route_usable=services.providers.usable
        )
        return page("model.html", visitor, model=shown)

    @get("/pricing")
    async def pricing(self, visitor: VisitorDep, services: ServicesDep) -> Template:
        products = [product.public() for product in services.billing.products]
        return page(
            "pricing.html",
            visitor,
            products=products,
            models=catalog(services),
            signup_reward=Credits(services.settings.auth.signup_reward),
            billing_enabled=services.billing.stripe.configured,
        )

    @get("/quickstart")
    async def quickstart(self, visitor: VisitorDep, services: ServicesDep) -> Template:
        return page("quickstart.html", visitor, base_url=services.settings.public_base_url)

    @get("/terms")
    async def terms(self, visitor: VisitorDep) -> Template:
        return page("terms.html", visitor)

    @get("/privacy")
    async def privacy(self, visitor: VisitorDep) -> Template:
        return page("privacy.html", visitor)
