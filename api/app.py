"""The Litestar application factory. ``conduit web`` serves ``create_app()`` with uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import msgspec
from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin

from api.deps import provide_services
from api.errors import EXCEPTION_HANDLERS
from api.observability import metrics, observability_middleware
from api.proxies import trusted_proxies_middleware
from api.rate_limit_headers import add_rate_limit_headers
from api.routes.account import AccountController
from api.routes.admin import AdminController
from api.routes.auth import AuthController
from api.routes.billing import BillingController
from api.routes.files import FileController
from api.routes.health import healthz, readyz
from api.routes.keys import KeyController
from api.routes.models import ModelController
from api.routes.oauth import OAuthController
from api.routes.openai_api import OpenAIController
from api.routes.promotions import PromoController
from api.routes.rate_limits import RateLimitController
from api.routes.support import support_router
from api.routes.tasks import TaskController
from api.routes.usage import UsageController
from api.routes.webhooks import WEBHOOK_CONTROLLERS
from api.web import template_config, web_router
from shared.infra.metrics.store import MetricsFlusher
from shared.ledger.money import Credits
from shared.openai_api import settlements
from shared.services import Services
from shared.settings import Settings


def encode_credits(value: Credits) -> msgspec.Raw:
    """Credits appear as JSON numbers with up to six decimals (exact: rendered from integers)."""
    return msgspec.Raw(str(value).encode())


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        services = await Services.start(settings)
        app.state.services = services
        invalidations = asyncio.create_task(services.keys.listen(services.redis))
        flusher = MetricsFlusher(services.redis, settings.operating.metrics_flush_s)
        flusher.start()
        try:
            yield
        finally:
            invalidations.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await invalidations
            await flusher.close()
            await settlements.drain()  # chat completions still settling
            await services.close()

    return Litestar(
        route_handlers=[
            healthz,
            ModelController,
            TaskController,
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
            # operating
            readyz,
            metrics,
            AdminController,
            # the website and dashboard
            web_router(),
        ],
        lifespan=[lifespan],
        dependencies={"services": Provide(provide_services, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        before_send=[add_rate_limit_headers],
        # the client's address (behind trusted proxies only), then request ids and HTTP metrics
        middleware=[*trusted_proxies_middleware(settings.forwarded_allow_ips), observability_middleware],
        type_encoders={Credits: encode_credits},
        template_config=template_config(),
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Conduit",
            version="0.1.0",
            description="One API, one key and one credit balance in front of many AI models.",
            path="/docs",
            render_plugins=[ScalarRenderPlugin()],
        ),
        debug=False,
        # The process's logging is configured by the CLI (shared.infra.logs, LOG_LEVEL). Litestar's default config
        # would reset the root logger to INFO behind a queue thread: httpx then logs every upstream call.
        logging_config=None,
    )
