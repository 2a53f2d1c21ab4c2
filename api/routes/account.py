"""/v1/account: the caller's account, balance and ledger."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, delete, get
from litestar.di import Provide
from litestar.params import FromQuery, JSONBody, QueryParameter

from api.contract import raises
from api.deps import (
    AuthDep,
    PrincipalDep,
    ServicesDep,
    SessionPrincipalDep,
    password_client,
    provide_auth,
    provide_principal,
    provide_session_principal,
)
from api.permissions import requires
from api.routes.auth import session_cookie
from shared.accounts.erasure import delete_account
from shared.accounts.service import Account, LedgerEntry, get_account, list_ledger
from shared.infra.errors import Conflict, InvalidInput, RateLimited
from shared.infra.pagination import PageEnvelope, page_envelope


class DeleteAccountBody(msgspec.Struct, forbid_unknown_fields=True):
    password: str | None = None


class AccountController(Controller):
    path = "/v1/account"
    tags = ["account"]
    opt = requires("account.read")
    dependencies = {"principal": Provide(provide_principal)}

    @get("/", operation_id="getAccount")
    async def account(self, principal: PrincipalDep, services: ServicesDep) -> Account:
        view = await get_account(services.db, principal.account_id)
        return view.public()

    @get("/ledger", operation_id="listLedgerEntries")
    async def ledger(
        self,
        principal: PrincipalDep,
        services: ServicesDep,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 50,
        after: FromQuery[str | None] = None,
    ) -> PageEnvelope[LedgerEntry]:
        return page_envelope(await list_ledger(services.db, principal.account_id, limit=limit, after=after))

    @delete(
        "/",
        operation_id="deleteAccount",
        status_code=204,
        opt=requires("account.delete"),
        dependencies={
            "principal": Provide(provide_session_principal),
            "auth": Provide(provide_auth, sync_to_thread=False),
        },
    )
    @raises(
        (InvalidInput, "invalid_input", "invalid_credentials"),
        (RateLimited, "too_many_signin_attempts", "too_many_requests"),
        (Conflict, "last_owner"),
    )
    async def delete_account(
        self,
        request: Request,
        principal: SessionPrincipalDep,
        auth: AuthDep,
        services: ServicesDep,
        data: JSONBody[DeleteAccountBody | None] = None,
    ) -> Response[None]:
        """Delete your account for good (with a session; an account with a password confirms it with
        ``{"password": ...}``, one without needs no body): keys revoked, sessions ended, personal data erased.
        The ledger and usage records are kept, anonymised."""
        password = data.password if data is not None else None
        await delete_account(
            auth, services.queue, services.storage, principal, password=password, client=password_client(request)
        )
        return Response(None, status_code=204, cookies=[session_cookie(auth.settings, "", 0)])
