"""/v1/account: the caller's account, balance and ledger."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, get
from litestar.di import Provide
from litestar.params import FromQuery, QueryParameter

from api.deps import PrincipalDep, ServicesDep, provide_principal
from shared.accounts.service import get_account, list_ledger


class AccountController(Controller):
    path = "/v1/account"
    tags = ["account"]
    dependencies = {"principal": Provide(provide_principal)}

    @get("/")
    async def account(self, principal: PrincipalDep, services: ServicesDep) -> dict[str, Any]:
        view = await get_account(services.db, principal.account_id)
        return view.public()

    @get("/ledger")
    async def ledger(
        self,
        principal: PrincipalDep,
        services: ServicesDep,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 50,
        after: FromQuery[str | None] = None,
    ) -> dict[str, Any]:
        entries, has_more = await list_ledger(services.db, principal.account_id, limit=limit, after=after)
        return {
            "object": "list",
            "data": entries,
            "has_more": has_more,
            "next_cursor": entries[-1]["id"] if has_more and entries else None,
        }
