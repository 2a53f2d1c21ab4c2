"""/v1/promo-codes: claim a promotional code (with a session or an API key)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, post
from litestar.di import Provide
from litestar.params import JSONBody

from api.deps import PrincipalDep, ServicesDep, provide_principal
from api.permissions import requires
from shared.accounts.rewards import redeem_promo_code


class RedeemBody(msgspec.Struct, forbid_unknown_fields=True):
    code: str


class PromoController(Controller):
    path = "/v1/promo-codes"
    opt = requires("billing.manage")
    tags = ["account"]
    dependencies = {"principal": Provide(provide_principal)}

    @post("/redeem", status_code=200)
    async def redeem(
        self, principal: PrincipalDep, services: ServicesDep, data: JSONBody[RedeemBody]
    ) -> dict[str, Any]:
        """Add a promotional code's credits to your balance (once per account)."""
        redemption = await redeem_promo_code(services.db, services.limiter, principal.account_id, data.code)
        return redemption.public()
