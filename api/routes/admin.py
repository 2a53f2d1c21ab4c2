"""/v1/admin: operators (role ``admin``) fix accounts and tasks without touching the database by hand.

Every route needs an admin's API key or session (a session that passed its second factor, with its CSRF
token); anyone else gets ``403 admin_only``, and a support agent's refused attempt is written to the staff
audit log. Every action is written to it too (``shared.staff.audit``). The ``conduit`` CLI offers the same
actions (``conduit admin …``); the console's buttons call these routes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, TypeAlias

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from api.contract import raises
from api.deps import PrincipalDep, ServicesDep, provide_auth, provide_principal
from api.input_fields import Days, IntegerCount, micro_credits
from api.permissions import requires
from api.proxies import client_ip
from shared.accounts.key_management import UNSET
from shared.accounts.keys import Principal
from shared.accounts.rewards import PromoCodeSummary, create_promo_code, disable_promo_code, list_promo_codes
from shared.admin import accounts as admin_accounts
from shared.admin import standing
from shared.admin import tasks as admin_tasks
from shared.admin.providers import provider_health
from shared.admin.tasks import AdminTask
from shared.admin.views import (
    AccountDetail,
    AccountLimits,
    AccountRole,
    AccountStanding,
    AccountSummary,
    CreditAdjustment,
    ProviderHealth,
    RevokedKey,
    VerificationMail,
)
from shared.infra.errors import Conflict, NotFound, PermissionDenied
from shared.infra.pagination import ListEnvelope, PageEnvelope, list_envelope, page_envelope
from shared.services import Services
from shared.staff import STAFF_ROLES, Actor, audit, require_staff

Limit = Annotated[int, QueryParameter(ge=1, le=100)]
ActorDep: TypeAlias = NamedDependency[Actor]


async def checked_staff(request: Request, principal: Principal, services: Services, *, admin: bool) -> Actor:
    """The actor of a staff route, or 403; a staff member's refused attempt is written to the audit log."""
    actor = Actor.of(principal, client_ip(request))
    try:
        require_staff(principal, admin=admin)
    except PermissionDenied as exc:
        if principal.role in STAFF_ROLES:
            action = f"refused.{request.route_handler.handler_name}"
            await audit.record(services.db, actor, action, "route", f"{request.method} {request.url.path}",
                               reason=exc.code, outcome="refused")  # fmt: skip
        raise
    return actor


@raises((PermissionDenied, "admin_only", "second_factor_required"))
async def provide_admin(request: Request, principal: PrincipalDep, services: ServicesDep) -> Actor:
    return await checked_staff(request, principal, services, admin=True)


ADMIN = {"principal": Provide(provide_principal), "admin": Provide(provide_admin)}
ACCOUNT_NOT_FOUND = (NotFound, "account_not_found")
TASK_NOT_FOUND = (NotFound, "task_not_found")


class CreditAdjustmentBody(msgspec.Struct, forbid_unknown_fields=True):
    amount: Decimal  # credits: positive grants, negative deducts
    reason: str
    operation_id: str | None = None  # retrying with the same id applies the adjustment once


class ReasonBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: str = ""


class LimitsBody(msgspec.Struct, forbid_unknown_fields=True):
    rate_limit_rpm: int | msgspec.UnsetType | None = msgspec.UNSET  # null: back to the default
    max_inflight_tasks: int | msgspec.UnsetType | None = msgspec.UNSET
    reason: str = ""


class RoleBody(msgspec.Struct, forbid_unknown_fields=True):
    role: str
    reason: str = ""


class PromoBody(msgspec.Struct, forbid_unknown_fields=True):
    credits: Decimal
    code: str | None = None
    expires_at: dt.datetime | None = None
    credit_validity_days: Days | None = None
    max_redemptions: IntegerCount | None = None
    description: str = ""


def _given(value: object) -> object:
    return UNSET if value is msgspec.UNSET else value


class AdminController(Controller):
    opt = requires("staff")
    path = "/v1/admin"
    tags = ["admin"]
    dependencies = ADMIN

    @get("/accounts", operation_id="searchAccounts")
    async def search_accounts(
        self,
        admin: ActorDep,
        services: ServicesDep,
        q: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        role: FromQuery[str | None] = None,
        limit: Limit = 20,
        after: FromQuery[str | None] = None,
    ) -> PageEnvelope[AccountSummary]:
        """``q``: an account id, an API key prefix, an order id or part of an email; newest first."""
        page = await admin_accounts.search_accounts(
            services.db, query=q, status=status, role=role, limit=limit, after=after
        )
        return page_envelope(page)

    @get("/accounts/{account:str}", operation_id="getAccountDetail")
    @raises(ACCOUNT_NOT_FOUND)
    async def get_account(self, admin: ActorDep, services: ServicesDep, account: FromPath[str]) -> AccountDetail:
        return await admin_accounts.account_detail(services.db, account)

    @post("/accounts/{account:str}/credits", operation_id="adjustCredits", status_code=200)
    @raises(ACCOUNT_NOT_FOUND, (Conflict, "account_deleted", "operation_id_reused", "insufficient_unused_credits"))
    async def adjust_credits(
        self, admin: ActorDep, services: ServicesDep, account: FromPath[str], data: JSONBody[CreditAdjustmentBody]
    ) -> CreditAdjustment:
        """Grant (positive ``amount``) or deduct (negative) credits, with a ``reason`` written in the ledger."""
        return await admin_accounts.adjust_credits(
            services.db,
            account,
            amount=micro_credits(data.amount, "amount", services.settings.input_limits),
            reason=data.reason,
            actor=admin,
            operation_id=data.operation_id,
        )

    @post("/accounts/{account:str}/suspend", operation_id="suspendAccount", status_code=200)
    @raises(ACCOUNT_NOT_FOUND, (Conflict, "account_deleted"))
    async def suspend(
        self, admin: ActorDep, services: ServicesDep, account: FromPath[str], data: JSONBody[ReasonBody]
    ) -> AccountStanding:
        """Suspend with a ``reason`` (required; the owner sees it in every refusal: ``account_suspended``)."""
        return await standing.set_suspended(
            services.db, services.redis, account, suspended=True, actor=admin, reason=data.reason
        )

    @post("/accounts/{account:str}/unsuspend", operation_id="unsuspendAccount", status_code=200)
    @raises(ACCOUNT_NOT_FOUND, (Conflict, "account_deleted"))
    async def unsuspend(self, admin: ActorDep, services: ServicesDep, account: FromPath[str]) -> AccountStanding:
        return await standing.set_suspended(services.db, services.redis, account, suspended=False, actor=admin)

    @post("/accounts/{account:str}/limits", operation_id="setAccountLimits", status_code=200)
    @raises(ACCOUNT_NOT_FOUND)
    async def limits(
        self, admin: ActorDep, services: ServicesDep, account: FromPath[str], data: JSONBody[LimitsBody]
    ) -> AccountLimits:
        """The account's own ``rate_limit_rpm`` and ``max_inflight_tasks`` (``null``: the default)."""
        return await standing.change_limits(
            services.db, services.redis, account, actor=admin, rpm=_given(data.rate_limit_rpm),
            max_inflight=_given(data.max_inflight_tasks), reason=data.reason,
        )  # fmt: skip

    @post("/accounts/{account:str}/role", operation_id="setAccountRole", status_code=200)
    @raises(ACCOUNT_NOT_FOUND, Conflict)
    async def role(
        self, admin: ActorDep, services: ServicesDep, account: FromPath[str], data: JSONBody[RoleBody]
    ) -> AccountRole:
        """Grant a staff ``role`` (``support``, ``admin``) or take it back (``user``)."""
        return await standing.set_role(services.db, services.redis, account, data.role, actor=admin, reason=data.reason)

    @post("/accounts/{account:str}/resend-verification", operation_id="resendAccountVerification", status_code=200)
    @raises(ACCOUNT_NOT_FOUND, Conflict)
    async def resend_verification(
        self, admin: ActorDep, services: ServicesDep, account: FromPath[str]
    ) -> VerificationMail:
        return await standing.resend_verification(provide_auth(services), account, actor=admin)

    @post("/keys/{key_id:str}/revoke", operation_id="revokeAnyKey", status_code=200)
    @raises((NotFound, "api_key_not_found"))
    async def revoke_key(self, admin: ActorDep, services: ServicesDep, key_id: FromPath[str]) -> RevokedKey:
        return await admin_accounts.revoke_any_key(services.db, services.redis, key_id, actor=admin)

    @get("/tasks/{task_id:str}", operation_id="getAnyTask")
    @raises(TASK_NOT_FOUND)
    async def get_task(self, admin: ActorDep, services: ServicesDep, task_id: FromPath[str]) -> AdminTask:
        return await admin_tasks.view_task(services.db, services.signer, task_id)

    @post("/tasks/{task_id:str}/fail", operation_id="failTask", status_code=200)
    @raises(TASK_NOT_FOUND, (Conflict, "task_finished"))
    async def fail_task(
        self, admin: ActorDep, services: ServicesDep, task_id: FromPath[str], data: JSONBody[ReasonBody]
    ) -> AdminTask:
        """Fail a queued or running task (``failed_by_operator``); its hold is voided."""
        return await admin_tasks.fail_task(
            services.db,
            services.queue,
            services.signer,
            task_id,
            reason=data.reason,
            actor=admin,
            slots=services.request_limits.slots,
            events=services.events,
        )

    @post("/tasks/{task_id:str}/retry", operation_id="retryTask", status_code=200)
    @raises(TASK_NOT_FOUND, (Conflict, "task_finished"))
    async def retry_task(self, admin: ActorDep, services: ServicesDep, task_id: FromPath[str]) -> AdminTask:
        """Hand a stuck queued or running task back to the workers."""
        return await admin_tasks.retry_task(services.db, services.queue, services.signer, task_id, actor=admin)

    @get("/providers", operation_id="listProviderHealth")
    async def providers(self, admin: ActorDep, services: ServicesDep) -> ListEnvelope[ProviderHealth]:
        return list_envelope(await provider_health(services.db, services.providers))

    @get("/promo-codes", operation_id="listPromoCodes")
    async def list_promos(self, admin: ActorDep, services: ServicesDep) -> ListEnvelope[PromoCodeSummary]:
        return list_envelope([promo.summary() for promo in await list_promo_codes(services.db)])

    @post("/promo-codes", operation_id="createPromoCode", status_code=201)
    @raises((Conflict, "promo_code_exists"))
    async def create_promo(self, admin: ActorDep, services: ServicesDep, data: JSONBody[PromoBody]) -> PromoCodeSummary:
        promo = await create_promo_code(
            services.db,
            credits=micro_credits(data.credits, "credits", services.settings.input_limits),
            code=data.code,
            expires_at=data.expires_at,
            credit_validity_days=data.credit_validity_days,
            max_redemptions=data.max_redemptions,
            description=data.description,
        )
        await audit.record(services.db, admin, "promo.create", "promo_code", promo.code, after=promo.summary())
        return promo.summary()

    @post("/promo-codes/{code:str}/disable", operation_id="disablePromoCode", status_code=200)
    @raises((NotFound, "promo_code_not_found"))
    async def disable_promo(self, admin: ActorDep, services: ServicesDep, code: FromPath[str]) -> PromoCodeSummary:
        summary = (await disable_promo_code(services.db, code)).summary()
        await audit.record(services.db, admin, "promo.disable", "promo_code", code, after=summary)
        return summary
