"""/v1/webhooks: endpoints, the signing secret of task-level webhook URLs, the delivery log; and
/v1/tasks/{id}/webhooks: the deliveries of one task."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from api.contract import raises
from api.deps import PrincipalDep, ServicesDep, provide_principal
from api.permissions import requires
from shared.infra.errors import Conflict, InvalidInput, NotFound
from shared.infra.pagination import Page, PageEnvelope, page_envelope
from shared.tasks.queries import get_task
from shared.webhooks import endpoints
from shared.webhooks.endpoints import WebhookEndpoint, WebhookSigningSecret
from shared.webhooks.log import Delivery, WebhookDelivery, get_delivery, list_deliveries, retry_delivery

ENDPOINT_NOT_FOUND = (NotFound, "webhook_endpoint_not_found")
DELIVERY_NOT_FOUND = (NotFound, "webhook_delivery_not_found")
UNSAFE_URL = (InvalidInput, "invalid_input", "url_not_allowed")


class DeletedEndpoint(msgspec.Struct):
    id: str
    object: Literal["webhook_endpoint"]
    deleted: bool


class CreateEndpointBody(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    events: list[str] | None = None
    description: str = ""
    enabled: bool = True


class UpdateEndpointBody(msgspec.Struct, forbid_unknown_fields=True):
    url: str | None = None
    events: list[str] | None = None
    description: str | None = None
    enabled: bool | None = None


class RotateSecretBody(msgspec.Struct, forbid_unknown_fields=True):
    """The body of a rotation, required: ``{}`` keeps the old secret signing for the default day."""

    grace_period_s: int | None = None


class WebhookEndpointController(Controller):
    opt = requires("webhooks.read")
    path = "/v1/webhooks/endpoints"
    tags = ["webhooks"]
    dependencies = {"principal": Provide(provide_principal)}

    @post("/", operation_id="createWebhookEndpoint", status_code=201, opt=requires("webhooks.manage"))
    @raises(UNSAFE_URL, (Conflict, "too_many_webhook_endpoints"))
    async def create(
        self, data: JSONBody[CreateEndpointBody], principal: PrincipalDep, services: ServicesDep
    ) -> WebhookEndpoint:
        endpoint = await endpoints.create_endpoint(
            services.db,
            services.url_guard,
            principal.account_id,
            url=data.url,
            events=data.events,
            description=data.description,
            enabled=data.enabled,
        )
        return endpoint.public(with_secret=True)  # the only time the secret is shown (and after a rotation)

    @get("/", operation_id="listWebhookEndpoints")
    async def list_endpoints(self, principal: PrincipalDep, services: ServicesDep) -> PageEnvelope[WebhookEndpoint]:
        found = await endpoints.list_endpoints(services.db, principal.account_id)
        return page_envelope(Page([e.public() for e in found]))  # every endpoint, in the shape of a page

    @get("/{endpoint_id:str}", operation_id="getWebhookEndpoint")
    @raises(ENDPOINT_NOT_FOUND)
    async def get_endpoint(
        self, principal: PrincipalDep, services: ServicesDep, endpoint_id: FromPath[str]
    ) -> WebhookEndpoint:
        return (await endpoints.get_endpoint(services.db, principal.account_id, endpoint_id)).public()

    @patch("/{endpoint_id:str}", operation_id="updateWebhookEndpoint", opt=requires("webhooks.manage"))
    @raises(ENDPOINT_NOT_FOUND, UNSAFE_URL)
    async def update(
        self,
        data: JSONBody[UpdateEndpointBody],
        principal: PrincipalDep,
        services: ServicesDep,
        endpoint_id: FromPath[str],
    ) -> WebhookEndpoint:
        changes = endpoints.EndpointChanges(
            url=data.url, events=data.events, description=data.description, enabled=data.enabled
        )
        updated = await endpoints.update_endpoint(
            services.db, services.url_guard, principal.account_id, endpoint_id, changes
        )
        return updated.public()

    @delete(
        "/{endpoint_id:str}", operation_id="deleteWebhookEndpoint", status_code=200, opt=requires("webhooks.manage")
    )
    @raises(ENDPOINT_NOT_FOUND)
    async def delete_endpoint(
        self, principal: PrincipalDep, services: ServicesDep, endpoint_id: FromPath[str]
    ) -> DeletedEndpoint:
        await endpoints.delete_endpoint(services.db, principal.account_id, endpoint_id)
        return DeletedEndpoint(id=endpoint_id, object="webhook_endpoint", deleted=True)

    @post(
        "/{endpoint_id:str}/rotate-secret",
        operation_id="rotateWebhookEndpointSecret",
        status_code=200,
        opt=requires("webhooks.manage"),
        summary="Rotate an endpoint's signing secret",
    )
    @raises(ENDPOINT_NOT_FOUND)
    async def rotate_secret(
        self,
        principal: PrincipalDep,
        services: ServicesDep,
        endpoint_id: FromPath[str],
        data: JSONBody[RotateSecretBody],
    ) -> WebhookEndpoint:
        """A new ``whsec_`` secret for this endpoint (shown in this answer only); the old one keeps signing for
        ``grace_period_s`` (default a day). The body is required: ``{}`` for the default."""
        rotated = await endpoints.rotate_endpoint_secret(
            services.db, principal.account_id, endpoint_id, grace_s=data.grace_period_s
        )
        return rotated.public(with_secret=True)


class WebhookSecretController(Controller):
    opt = requires("webhooks.read")
    """The account's signing secret for the ``webhook_url`` of tasks."""

    path = "/v1/webhooks/secret"
    tags = ["webhooks"]
    dependencies = {"principal": Provide(provide_principal)}

    @get("/", operation_id="getWebhookSigningSecret")
    async def get_secret(self, principal: PrincipalDep, services: ServicesDep) -> WebhookSigningSecret:
        return (await endpoints.signing_secret(services.db, principal.account_id)).public()

    @post(
        "/rotate",
        operation_id="rotateWebhookSigningSecret",
        status_code=200,
        opt=requires("webhooks.manage"),
        summary="Rotate the account's signing secret of tasks' webhook_url",
    )
    async def rotate(
        self, principal: PrincipalDep, services: ServicesDep, data: JSONBody[RotateSecretBody]
    ) -> WebhookSigningSecret:
        """A new account signing secret, the one that signs the deliveries to tasks' own ``webhook_url`` (each
        endpoint has its own: ``/v1/webhooks/endpoints/{id}/rotate-secret``). The old one keeps signing for
        ``grace_period_s`` (default a day). The body is required: ``{}`` for the default."""
        rotated = await endpoints.rotate_signing_secret(services.db, principal.account_id, grace_s=data.grace_period_s)
        return rotated.public()


class WebhookDeliveryController(Controller):
    opt = requires("webhooks.read")
    path = "/v1/webhooks/deliveries"
    tags = ["webhooks"]
    dependencies = {"principal": Provide(provide_principal)}

    @get("/", operation_id="listWebhookDeliveries")
    async def list_deliveries(
        self,
        principal: PrincipalDep,
        services: ServicesDep,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
        after: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        task_id: FromQuery[str | None] = None,
        endpoint_id: FromQuery[str | None] = None,
        event_type: FromQuery[str | None] = None,
    ) -> PageEnvelope[WebhookDelivery]:
        page = await list_deliveries(
            services.db,
            principal.account_id,
            limit=limit,
            after=after,
            status=status,
            task_id=task_id,
            endpoint_id=endpoint_id,
            event_type=event_type,
        )
        return page_envelope(page.map(Delivery.public))

    @get("/{delivery_id:str}", operation_id="getWebhookDelivery")
    @raises(DELIVERY_NOT_FOUND)
    async def get_delivery(
        self, principal: PrincipalDep, services: ServicesDep, delivery_id: FromPath[str]
    ) -> WebhookDelivery:
        return (await get_delivery(services.db, principal.account_id, delivery_id)).public()

    @post(
        "/{delivery_id:str}/retry",
        operation_id="retryWebhookDelivery",
        status_code=202,
        opt=requires("webhooks.manage"),
    )
    @raises(DELIVERY_NOT_FOUND, (Conflict, "webhook_endpoint_disabled", "webhook_delivery_in_progress"))
    async def retry(
        self, principal: PrincipalDep, services: ServicesDep, delivery_id: FromPath[str]
    ) -> WebhookDelivery:
        delivery = await retry_delivery(services.db, services.queue, principal.account_id, delivery_id)
        return delivery.public()


class TaskWebhooksController(Controller):
    opt = requires("webhooks.read")
    path = "/v1/tasks/{task_id:str}/webhooks"
    tags = ["tasks", "webhooks"]
    dependencies = {"principal": Provide(provide_principal)}

    @get("/", operation_id="listTaskWebhookDeliveries")
    @raises((NotFound, "task_not_found"))
    async def task_deliveries(
        self,
        principal: PrincipalDep,
        services: ServicesDep,
        task_id: FromPath[str],
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
        after: FromQuery[str | None] = None,
    ) -> PageEnvelope[WebhookDelivery]:
        task = await get_task(services.db, principal.account_id, task_id)  # 404 for another account's task
        page = await list_deliveries(services.db, principal.account_id, limit=limit, after=after, task_id=task.id)
        return page_envelope(page.map(Delivery.public))


WEBHOOK_CONTROLLERS = [
    WebhookEndpointController,
    WebhookSecretController,
    WebhookDeliveryController,
    TaskWebhooksController,
]
