"""/v1/keys: API key management, for people signed in with a session (an API key cannot manage keys)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.di import Provide
from litestar.params import FromPath, JSONBody

from api.contract import raises
from api.deps import ActorDep, ServicesDep, SessionPrincipalDep, provide_actor, provide_session_principal
from api.input_fields import credits_within_limit
from api.permissions import requires
from shared.accounts import key_management as keys
from shared.accounts.key_limits import BudgetInput
from shared.accounts.key_views import ApiKey
from shared.infra.errors import Conflict, InvalidInput, NotFound
from shared.infra.pagination import ListEnvelope, list_envelope
from shared.services import Services


class RateLimitsBody(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The key's own rate limits; null: the default. The account's limits apply as well."""

    requests_per_minute: int | msgspec.UnsetType | None = msgspec.UNSET
    max_inflight_tasks: int | msgspec.UnsetType | None = msgspec.UNSET


class BudgetBody(msgspec.Struct, forbid_unknown_fields=True):
    """At most ``amount`` credits per ``period`` (day, week, month): UTC calendar periods, or ``rolling`` ones
    counted from when the budget is set."""

    amount: Decimal
    period: str
    reset: str = "calendar"


def budget_input(body: BudgetBody | None, services: Services) -> BudgetInput | None:
    """A budget body as the services take it (its amount within the input limits)."""
    if body is None:
        return None
    amount = credits_within_limit(body.amount, "budget.amount", services.settings.input_limits)
    return BudgetInput(amount=amount, period=body.period, reset=body.reset)


class CreateKeyBody(msgspec.Struct, forbid_unknown_fields=True):
    name: str = ""
    expires_at: dt.datetime | None = None
    allowed_models: list[str] | None = None
    spend_cap: Decimal | None = None  # credits
    rate_limits: RateLimitsBody | None = None
    budget: BudgetBody | None = None


class UpdateKeyBody(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: str | msgspec.UnsetType = msgspec.UNSET
    allowed_models: list[str] | msgspec.UnsetType | None = msgspec.UNSET
    spend_cap: Decimal | msgspec.UnsetType | None = msgspec.UNSET
    rate_limits: RateLimitsBody | msgspec.UnsetType = msgspec.UNSET
    budget: BudgetBody | msgspec.UnsetType | None = msgspec.UNSET


def _or_unset(value: Any) -> Any:
    return keys.UNSET if value is msgspec.UNSET else value


def _or_none(value: Any) -> Any:
    return None if value is msgspec.UNSET else value


def _spend_cap(value: Any, services: Services) -> Any:
    if isinstance(value, Decimal):
        return credits_within_limit(value, "spend_cap", services.settings.input_limits)
    return value


KEY_NOT_FOUND = (NotFound, "key_not_found")


class KeyController(Controller):
    path = "/v1/keys"
    tags = ["keys"]
    opt = requires("keys.read")
    dependencies = {
        "principal": Provide(provide_session_principal),
        "actor": Provide(provide_actor, sync_to_thread=False),
    }

    @post("/", operation_id="createKey", status_code=201, opt=requires("keys.manage"))
    @raises((InvalidInput, "invalid_input", "model_not_found"), (Conflict, "too_many_keys"))
    async def create(
        self, principal: SessionPrincipalDep, actor: ActorDep, services: ServicesDep, data: JSONBody[CreateKeyBody]
    ) -> ApiKey:
        """Create a key. Its ``secret`` is in this response only: store it now."""
        view, secret = await keys.create_key(
            services.db,
            services.catalog,
            principal.account_id,
            name=data.name,
            expires_at=data.expires_at,
            allowed_models=data.allowed_models,
            spend_cap=_spend_cap(data.spend_cap, services),
            rate_limit_rpm=_or_none(data.rate_limits.requests_per_minute if data.rate_limits else None),
            max_inflight_tasks=_or_none(data.rate_limits.max_inflight_tasks if data.rate_limits else None),
            budget=budget_input(data.budget, services),
            actor=actor,
        )
        return view.public(secret)

    @get("/", operation_id="listKeys")
    async def list_keys(self, principal: SessionPrincipalDep, services: ServicesDep) -> ListEnvelope[ApiKey]:
        return list_envelope([view.public() for view in await keys.list_keys(services.db, principal.account_id)])

    @get("/{key_id:str}", operation_id="getKey")
    @raises(KEY_NOT_FOUND)
    async def get_key(self, principal: SessionPrincipalDep, services: ServicesDep, key_id: FromPath[str]) -> ApiKey:
        return (await keys.get_key(services.db, principal.account_id, key_id)).public()

    @patch("/{key_id:str}", operation_id="updateKey", opt=requires("keys.manage"))
    @raises(KEY_NOT_FOUND, (InvalidInput, "invalid_input", "model_not_found"))
    async def update(
        self,
        principal: SessionPrincipalDep,
        actor: ActorDep,
        services: ServicesDep,
        key_id: FromPath[str],
        data: JSONBody[UpdateKeyBody],
    ) -> ApiKey:
        """Rename a key or change its limits and budget (``null`` removes a limit)."""
        limits = data.rate_limits if not isinstance(data.rate_limits, msgspec.UnsetType) else None
        view = await keys.update_key(
            services.db,
            services.redis,
            services.catalog,
            principal.account_id,
            key_id,
            name=_or_unset(data.name),
            allowed_models=_or_unset(data.allowed_models),
            spend_cap=_or_unset(_spend_cap(data.spend_cap, services)),
            rate_limit_rpm=_or_unset(limits.requests_per_minute) if limits else keys.UNSET,
            max_inflight_tasks=_or_unset(limits.max_inflight_tasks) if limits else keys.UNSET,
            budget=keys.UNSET if isinstance(data.budget, msgspec.UnsetType) else budget_input(data.budget, services),
            actor=actor,
        )
        return view.public()

    @post("/{key_id:str}/revoke", operation_id="revokeKey", status_code=200, opt=requires("keys.manage"))
    @raises(KEY_NOT_FOUND)
    async def revoke(
        self, principal: SessionPrincipalDep, actor: ActorDep, services: ServicesDep, key_id: FromPath[str]
    ) -> ApiKey:
        return (await keys.revoke_key(services.db, services.redis, principal.account_id, key_id, actor=actor)).public()

    @post("/{key_id:str}/rotate", operation_id="rotateKey", status_code=200, opt=requires("keys.manage"))
    @raises(KEY_NOT_FOUND, (Conflict, "key_not_active"))
    async def rotate(
        self, principal: SessionPrincipalDep, actor: ActorDep, services: ServicesDep, key_id: FromPath[str]
    ) -> ApiKey:
        """A new secret for the key (shown once); the old one stops working at once."""
        view, secret = await keys.rotate_key(services.db, services.redis, principal.account_id, key_id, actor=actor)
        return view.public(secret)

    @delete("/{key_id:str}", operation_id="deleteKey", status_code=204, opt=requires("keys.manage"))
    @raises(KEY_NOT_FOUND)
    async def delete_key(
        self, principal: SessionPrincipalDep, actor: ActorDep, services: ServicesDep, key_id: FromPath[str]
    ) -> None:
        await keys.delete_key(services.db, services.redis, principal.account_id, key_id, actor=actor)
