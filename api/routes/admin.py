"""/v1/admin: operators (role ``admin``) fix accounts and tasks without touching the database by hand.

Every route needs an admin's API key or session (with its CSRF token); anyone else gets ``403 admin_only``.
The ``conduit`` CLI offers the same actions (``conduit admin …``)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, TypeAlias

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from api.deps import PrincipalDep, ServicesDep, provide_principal
from api.input_fields import Days, IntegerCount, micro_credits
from shared.accounts.keys import Principal
from shared.accounts.rewards import create_promo_code, disable_promo_code, list_promo_codes
from shared.admin import accounts as admin_accounts
from shared.admin import require_admin
from shared.admin import tasks as admin_tasks
from shared.admin.providers import provider_health
from shared.infra.pagination import list_envelope, page_envelope

Limit = Annotated[int, QueryParameter(ge=1, le=100)]


AdminDep: TypeAlias = NamedDependency[Principal]


async def provide_admin(principal: PrincipalDep) -> Principal:
    require_admin(principal.role)
    return principal


class CreditAdjustmentBody(msgspec.Struct, forbid_unknown_fields=True):
    amount: Decimal  # credits: positive grants, negative deducts
    reason: str
    operation_id: str | None = None  # retrying with the same id applies the adjustment once


class ReasonBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: str = ""


class PromoBody(msgspec.Struct, forbid_unknown_fields=True):
    credits: Decimal
    code: str | None = None
    expires_at: dt.datetime | None = None
    credit_validity_days: Days | None = None
    max_redemptions: IntegerCount | None = None
    description: str = ""


def _actor(principal: Principal) -> str:
    return f"admin {principal.account_id}"


class AdminController(Controller):
    path = "/v1/admin"
    tags = ["admin"]
    dependencies = {"principal": Provide(provide_principal), "admin": Provide(provide_admin)}

    @get("/accounts")
    async def search_accounts(
        self,
        admin: AdminDep,
        services: ServicesDep,
        q: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        role: FromQuery[str | None] = None,
        limit: Limit = 20,
        after: FromQuery[str | None] = None,
    ) -> dict[str, Any]:
        """``q``: an account id, an API key prefix or part of an email; newest first."""
        page = await admin_accounts.search_accounts(
            services.db, query=q, status=status, role=role, limit=limit, after=after
        )
        return page_envelope(page)

    @get("/accounts/{account:str}")
    async def get_account(self, admin: AdminDep, services: ServicesDep, account: FromPath[str]) -> dict[str, Any]:
        return await admin_accounts.account_detail(services.db, account)

    @post("/accounts/{account:str}/credits", status_code=200)
    async def adjust_credits(
        self, admin: AdminDep, services: ServicesDep, account: FromPath[str], data: JSONBody[CreditAdjustmentBody]
    ) -> dict[str, Any]:
        """Grant (positive ``amount``) or deduct (negative) credits, with a ``reason`` written in the ledger."""
        return await admin_accounts.adjust_credits(
            services.db,
            account,
            amount=micro_credits(data.amount, "amount", services.settings.input_limits),
            reason=data.reason,
            actor=_actor(admin),
            operation_id=data.operation_id,
        )

    @post("/accounts/{account:str}/suspend", status_code=200)
    async def suspend(self, admin: AdminDep, services: ServicesDep, account: FromPath[str]) -> dict[str, Any]:
        return await admin_accounts.set_suspended(services.db, services.redis, account, suspended=True)

    @post("/accounts/{account:str}/unsuspend", status_code=200)
    async def unsuspend(self, admin: AdminDep, services: ServicesDep, account: FromPath[str]) -> dict[str, Any]:
        return await admin_accounts.set_suspended(services.db, services.redis, account, suspended=False)

    @post("/keys/{key_id:str}/revoke", status_code=200)
    async def revoke_key(self, admin: AdminDep, services: ServicesDep, key_id: FromPath[str]) -> dict[str, Any]:
        return await admin_accounts.revoke_any_key(services.db, services.redis, key_id)

    @get("/tasks/{task_id:str}")
    async def get_task(self, admin: AdminDep, services: ServicesDep, task_id: FromPath[str]) -> dict[str, Any]:
        return await admin_tasks.view_task(services.db, services.signer, task_id)

    @post("/tasks/{task_id:str}/fail", status_code=200)
    async def fail_task(
        self, admin: AdminDep, services: ServicesDep, task_id: FromPath[str], data: JSONBody[ReasonBody]
    ) -> dict[str, Any]:
        """Fail a queued or running task (``failed_by_operator``); its hold is voided."""
        return await admin_tasks.fail_task(
            services.db,
            services.queue,
            services.signer,
            task_id,
            reason=data.reason,
            slots=services.request_limits.slots,
        )

    @post("/tasks/{task_id:str}/retry", status_code=200)
    async def retry_task(self, admin: AdminDep, services: ServicesDep, task_id: FromPath[str]) -> dict[str, Any]:
        """Hand a stuck queued or running task back to the workers."""
        return await admin_tasks.retry_task(services.db, services.queue, services.signer, task_id)

    @get("/providers")
    async def providers(self, admin: AdminDep, services: ServicesDep) -> dict[str, Any]:
        return list_envelope(await provider_health(services.db, services.providers))

    @get("/promo-codes")
    async def list_promos(self, admin: AdminDep, services: ServicesDep) -> dict[str, Any]:
        return list_envelope([promo.summary() for promo in await list_promo_codes(services.db)])

    @post("/promo-codes", status_code=201)
    async def create_promo(self, admin: AdminDep, services: ServicesDep, data: JSONBody[PromoBody]) -> dict[str, Any]:
        promo = await create_promo_code(
            services.db,
            credits=micro_credits(data.credits, "credits", services.settings.input_limits),
            code=data.code,
            expires_at=data.expires_at,
            credit_validity_days=data.credit_validity_days,
            max_redemptions=data.max_redemptions,
            description=data.description,
        )
        return promo.summary()

    @post("/promo-codes/{code:str}/disable", status_code=200)
    async def disable_promo(self, admin: AdminDep, services: ServicesDep, code: FromPath[str]) -> dict[str, Any]:
        return (await disable_promo_code(services.db, code)).summary()
