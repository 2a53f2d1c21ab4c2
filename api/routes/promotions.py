"""/v1/promo-codes: claim a promotional code (with a session or an API key)."""

from __future__ import annotations

import msgspec
from litestar import Controller, post
from litestar.di import Provide
from litestar.params import JSONBody

from api.contract import raises
from api.deps import PrincipalDep, ServicesDep, provide_principal
from api.permissions import requires
from shared.accounts.rewards import PromoRedemption, redeem_promo_code
from shared.infra.errors import Conflict, NotFound, RateLimited


class RedeemBody(msgspec.Struct, forbid_unknown_fields=True):
    code: str


class PromoController(Controller):
    path = "/v1/promo-codes"
    opt = requires("billing.manage")
    tags = ["account"]
    dependencies = {"principal": Provide(provide_principal)}

    @post("/redeem", operation_id="redeemPromoCode", status_code=200)
    @raises(
        (NotFound, "promo_code_not_found"),
        (Conflict, "promo_code_already_redeemed", "promo_code_expired", "promo_code_exhausted"),
        (RateLimited, "too_many_promo_attempts"),
    )
    async def redeem(
        self, principal: PrincipalDep, services: ServicesDep, data: JSONBody[RedeemBody]
    ) -> PromoRedemption:
        """Add a promotional code's credits to your balance (once per account)."""
        redemption = await redeem_promo_code(services.db, services.limiter, principal.account_id, data.code)
        return redemption.public()
