"""The Litestar application factory. ``conduit web`` serves ``create_app()`` with uvicorn."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import msgspec
from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from api.deps import provide_services
from api.docs_page import SelfHostedSwaggerUI
from api.errors import EXCEPTION_HANDLERS
from api.observability import metrics, observability_middleware
from api.openapi_document import CreditsSchema, describe_answers
from api.proxies import trusted_proxies_middleware
from api.rate_limit_headers import add_rate_limit_headers
from api.request_input import check_request_input, guarded_request
from api.request_tracing import traced_requests
from api.routes.account import AccountController
from api.routes.admin import AdminController
from api.routes.admin_ops import AdminOperationsController
from api.routes.auth import AuthController
from api.routes.batches import batch_router
from api.routes.billing import BillingController
from api.routes.events import EventController
from api.routes.files import FileController
from api.routes.health import healthz, readyz
from api.routes.image_edits import image_edits_router
from api.routes.keys import KeyController
from api.routes.members import AccountAuditController, InvitationController, MemberController, MembershipController
from api.routes.models import ModelController
from api.routes.moderation import AppealController, ModerationReviewController
from api.routes.moderations import ModerationController
from api.routes.oauth import OAuthController
from api.routes.openai_api import OpenAIController
from api.routes.promotions import PromoController
from api.routes.rate_limits import RateLimitController
from api.routes.second_factor import SecondFactorController
from api.routes.support import support_router
from api.routes.tasks import TaskController
from api.routes.uploads import uploads_router
from api.routes.usage import UsageController
from api.routes.webhooks import WEBHOOK_CONTROLLERS
from api.web import template_config, web_router
from shared.infra import tracing
from shared.infra.metrics.store import flush_periodically
from shared.ledger.money import Credits
from shared.services import Services
from shared.settings import Settings


def encode_credits(value: Credits) -> msgspec.Raw:
    """Credits appear as JSON numbers with up to six decimals."""
    return value.json_raw()


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    tracing.start(settings.operating, "web")

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        services = await Services.start(settings)
        app.state.services = services
        background = services.background
        background.spawn_loop(services.keys.listen(services.redis), name="key invalidation listener")
        flush_s = settings.operating.metrics_flush_s
        background.spawn_loop(flush_periodically(services.redis, flush_s), name="metrics flusher")
        background.spawn_loop(services.event_hub.run(), name="task events reader")
        background.spawn_loop(services.event_hub.reconcile_periodically(), name="task events reconciler")
        try:
            yield
        finally:
            await services.close()  # drains the background tasks (chat completions still settling, mails, ...)

    app = Litestar(
        route_handlers=[
            healthz,
            ModelController,
            TaskController,
            EventController,
            AccountController,
            FileController,
            *WEBHOOK_CONTROLLERS,
            # accounts
            AuthController,
            OAuthController,
            KeyController,
            PromoController,
            # usage, rate limits, support
            UsageController,
            RateLimitController,
            support_router(settings.support.max_request_bytes),
            # billing
            BillingController,
            # OpenAI-compatible chat completions and image generations
            OpenAIController,
            batch_router(settings.batches.file_max_bytes),  # the OpenAI Batch API
            # input media: uploads, and OpenAI's image edits (an image and a mask)
            uploads_router(settings.media.max_bytes + 64 * 1024),
            image_edits_router(2 * settings.media.max_bytes + 64 * 1024),
            ModerationController,
            ModerationReviewController,
            AppealController,
            # operating
            readyz,
            metrics,
            AdminController,
            AdminOperationsController,
            SecondFactorController,
            MemberController,
            AccountAuditController,
            InvitationController,
            MembershipController,
            # the website and dashboard
            web_router(),
        ],
        lifespan=[lifespan],
        dependencies={"services": Provide(provide_services, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        before_request=check_request_input,  # bad bytes in the path, query or headers; forms parsed and checked
        before_send=[add_rate_limit_headers],
        # the client's address (behind trusted proxies only), then request ids, HTTP metrics and the access log
        middleware=[
            *traced_requests(),  # while tracing: a server span per request, joining the client's traceparent
            *trusted_proxies_middleware(settings.forwarded_allow_ips),
            observability_middleware(access_log=settings.operating.access_log),
        ],
        type_encoders={Credits: encode_credits},
        plugins=[CreditsSchema()],  # credit amounts are numbers in the OpenAPI document
        template_config=template_config(),
        request_max_body_size=settings.max_body_bytes,
        request_class=guarded_request(settings.input_limits),  # JSON bodies and forms decoded and checked
        openapi_config=OpenAPIConfig(
            title="Conduit",
            version="0.1.0",
            description="One API, one key and one credit balance in front of many AI models.",
            path="/docs",
            render_plugins=[SelfHostedSwaggerUI("/docs")],  # its files served by Conduit, not a CDN
        ),
        debug=False,
        # The process's logging is configured by the CLI (shared.infra.logs, LOG_LEVEL). Litestar's default config
        # would reset the root logger to INFO behind a queue thread: httpx then logs every upstream call.
        logging_config=None,
    )
    describe_answers(app)  # the document is built once here, served as /docs/openapi.json
    return app
