"""GET /v1/models and /v1/models/{id}: public, no key needed."""

from __future__ import annotations

from litestar import Controller, get
from litestar.params import FromPath

from api.contract import raises
from api.deps import ServicesDep
from shared.catalog.views import CatalogModel, public_model
from shared.infra.errors import NotFound
from shared.infra.pagination import ListEnvelope, list_envelope


class ModelController(Controller):
    path = "/v1/models"
    tags = ["models"]

    @get("/", operation_id="listModels")
    async def list_models(self, services: ServicesDep) -> ListEnvelope[CatalogModel]:
        data = [
            public_model(m, available=services.providers.available(m), route_usable=services.providers.usable)
            for m in services.catalog
        ]
        return list_envelope(data)

    @get("/{model_id:str}", operation_id="getModel")
    @raises((NotFound, "model_not_found"))
    async def get_model(self, services: ServicesDep, model_id: FromPath[str]) -> CatalogModel:
        model = services.catalog.get(model_id)
        if model is None:
            raise NotFound(f"model {model_id!r} does not exist", code="model_not_found", param="model")
        return public_model(
            model, available=services.providers.available(model), route_usable=services.providers.usable
        )
