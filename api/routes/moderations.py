"""``POST /v1/moderations``: OpenAI's moderation endpoint, answered by the server's moderation policy
(``shared.moderation.openai_format``), so ``client.moderations.create`` works unchanged."""

from __future__ import annotations

from litestar import Controller, Response, post
from litestar.di import Provide
from litestar.params import JSONBody

from api.deps import SETTLES_LATER, PrincipalDep, ServicesDep, provide_principal
from api.permissions import requires
from shared.ledger.money import Credits
from shared.moderation.openai_format import ModerationBody, ModerationResponse, moderations


class ModerationController(Controller):
    path = "/v1"
    tags = ["openai"]
    dependencies = {"principal": Provide(provide_principal)}

    @post(
        "/moderations",
        operation_id="createModeration",
        status_code=200,
        opt={SETTLES_LATER: True, **requires("tasks.run")},
    )
    async def moderations(
        self, data: JSONBody[ModerationBody], principal: PrincipalDep, services: ServicesDep
    ) -> Response[ModerationResponse]:
        """Classify each ``input`` (a string or a list) under the policy; ``model``: a moderation model."""
        body, charged = await moderations(
            services.db, services.background, services.catalog, services.moderator, principal, data
        )
        return Response(body, headers={"X-Conduit-Credits-Charged": str(Credits(charged))})
