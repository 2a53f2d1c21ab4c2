"""OpenAI-compatible routes: ``POST /v1/chat/completions``, ``/v1/completions`` (legacy), ``/v1/embeddings`` and
``/v1/images/generations``.

A client built for OpenAI works by changing its base URL to ``<conduit>/v1`` and its key to a Conduit key.
(``GET /v1/models`` is ``api.routes.models``.) Errors have OpenAI's shape and statuses (``api.errors``).
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

import msgspec
from litestar import Controller, Response, post
from litestar.di import Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from litestar.response import Stream

from api.contract import raises
from api.deps import (
    SETTLES_LATER,
    PrincipalDep,
    ServicesDep,
    TaskAdmissionDep,
    provide_principal,
    provide_task_admission,
)
from api.permissions import requires
from api.rate_limit_headers import TASK_ROUTE
from shared.infra.errors import (
    BudgetExceeded,
    InsufficientCredits,
    ModelUnavailable,
    NotFound,
    SpendCapExceeded,
    UpstreamFailed,
)
from shared.ledger.money import Credits
from shared.openai_api import chat, completions, embeddings
from shared.openai_api.chat_events import ChatChunks
from shared.openai_api.chat_response import ChatCompletion, chat_completion
from shared.openai_api.completions import TextCompletion
from shared.openai_api.embeddings import EmbeddingList
from shared.openai_api.images import GenerationPending, ImageDeps, ImageInput, ImagesResponse, generate_images
from shared.services import Services

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# What a model request can be refused for, or fail with, besides its input and authentication
MODEL_REQUEST = (
    (NotFound, "model_not_found"),
    InsufficientCredits,
    SpendCapExceeded,
    BudgetExceeded,
    ModelUnavailable,
    UpstreamFailed,
)


def answered_with(answer: type, streamed: bool = False) -> dict[int, ResponseSpec]:
    """The ``responses`` of a route whose handler returns a ``Response`` (its headers set) of ``answer``."""
    also = "; with `stream: true`, server-sent events (text/event-stream) of its chunks" if streamed else ""
    return {
        200: ResponseSpec(
            answer, generate_examples=False, description=f"The answer (header X-Conduit-Credits-Charged){also}"
        )
    }


class ImageGenerationBody(msgspec.Struct):
    """OpenAI's image generation request (``quality``, ``style``, ``user`` are accepted and ignored)."""

    prompt: Any
    model: str
    n: int | None = None
    size: str | None = None
    response_format: str | None = None


class OpenAIController(Controller):
    opt = requires("tasks.run")
    path = "/v1"
    tags = ["openai"]
    dependencies = {"principal": Provide(provide_principal)}

    @post(
        "/chat/completions",
        operation_id="createChatCompletion",
        status_code=200,
        opt={SETTLES_LATER: True},
        responses=answered_with(ChatCompletion, streamed=True),
    )
    @raises(*MODEL_REQUEST)
    async def chat_completions(
        self, data: JSONBody[dict[str, Any]], principal: PrincipalDep, services: ServicesDep
    ) -> Response[Any]:
        """OpenAI's chat completion request (``shared.openai_api.chat_fields``: every field honoured or refused)."""
        ctx = await chat.begin_raw(
            services.db, services.background, services.catalog, services.providers, principal, data,
            media=services.media,
            moderator=services.moderator,
        )  # fmt: skip
        budget_s = min(services.settings.retry_budget_s, float(max(c.model.max_runtime_s for c in ctx.calls)))
        if ctx.call.stream:
            writer = partial(_chat_chunks, ctx)
            events = await chat.open_stream(ctx, services.providers, budget_s, writer)
            return Stream(events, media_type="text/event-stream", headers=SSE_HEADERS)
        completed, provider = await chat.complete(ctx, services.providers, budget_s, services.moderator)
        body = chat_completion(ctx.completion_id, ctx.served.model.id, provider, completed)
        return Response(body, headers={"X-Conduit-Credits-Charged": str(Credits(ctx.charge_for(completed.usage)))})

    @post(
        "/completions",
        operation_id="createCompletion",
        status_code=200,
        opt={SETTLES_LATER: True},
        responses=answered_with(TextCompletion, streamed=True),
    )
    @raises(*MODEL_REQUEST)
    async def completions(
        self, data: JSONBody[dict[str, Any]], principal: PrincipalDep, services: ServicesDep
    ) -> Response[Any]:
        """The legacy completion request (``shared.openai_api.completions``), served as a chat completion."""
        ctx = await chat.begin_raw(
            services.db, services.background, services.catalog, services.providers, principal, data,
            parse=completions.parse_completion_body, source=completions.SOURCE, moderator=services.moderator,
        )  # fmt: skip
        legacy = ctx.body
        assert isinstance(legacy, completions.LegacyInput)
        budget_s = min(services.settings.retry_budget_s, float(max(c.model.max_runtime_s for c in ctx.calls)))
        if ctx.call.stream:
            writer = partial(_legacy_chunks, ctx, legacy)
            events = await chat.open_stream(ctx, services.providers, budget_s, writer)
            return Stream(events, media_type="text/event-stream", headers=SSE_HEADERS)
        completed, provider = await chat.complete(ctx, services.providers, budget_s, services.moderator)
        body = completions.text_completion(ctx.completion_id, ctx.served.model.id, provider, legacy, completed)
        return Response(body, headers={"X-Conduit-Credits-Charged": str(Credits(ctx.charge_for(completed.usage)))})

    @post(
        "/embeddings",
        operation_id="createEmbeddings",
        status_code=200,
        opt={SETTLES_LATER: True},
        responses=answered_with(EmbeddingList),
    )
    @raises(*MODEL_REQUEST)
    async def embeddings(
        self, data: JSONBody[dict[str, Any]], principal: PrincipalDep, services: ServicesDep
    ) -> Response[Any]:
        """OpenAI's embeddings request (``shared.openai_api.embeddings``)."""
        body, charged = await embeddings.create(
            services.db, services.background, services.catalog, services.providers, principal, data,
            services.settings.retry_budget_s, services.moderator,
        )  # fmt: skip
        return Response(body, headers={"X-Conduit-Credits-Charged": str(Credits(charged))})

    @post(
        "/images/generations",
        operation_id="createImages",
        status_code=200,
        opt={"rate_limit": TASK_ROUTE},  # requests per minute and an in-flight slot, like a task submit
        dependencies={"admission": Provide(provide_task_admission)},
    )
    @raises(*MODEL_REQUEST, GenerationPending)
    async def image_generations(
        self,
        data: JSONBody[ImageGenerationBody],
        principal: PrincipalDep,
        admission: TaskAdmissionDep,
        services: ServicesDep,
    ) -> ImagesResponse:
        deps = image_deps(services)
        body = ImageInput(
            model=data.model, prompt=data.prompt, n=data.n, size=data.size, response_format=data.response_format
        )
        admission.created = True  # from here on the task (if any) owns the slot and gives it back when it ends
        try:
            return await generate_images(deps, principal, body, admission.task_id)
        except BaseException:
            admission.created = await task_exists(services, admission.task_id)
            raise


def _chat_chunks(ctx: chat.ChatContext, provider: str) -> ChatChunks:
    return ChatChunks(ctx.completion_id, ctx.served.model.id, provider)


def _legacy_chunks(ctx: chat.ChatContext, legacy: completions.LegacyInput, provider: str) -> completions.LegacyChunks:
    return completions.LegacyChunks(ctx.completion_id, ctx.served.model.id, provider, legacy)


def image_deps(services: Services) -> ImageDeps:
    return ImageDeps(
        db=services.db,
        queue=services.queue,
        catalog=services.catalog,
        providers=services.providers,
        storage=services.storage,
        signer=services.signer,
        wait_s=services.settings.image_generation_wait_s,
        media=services.media,
        moderator=services.moderator,
    )


async def task_exists(services: Services, task_id: uuid.UUID) -> bool:
    return bool(await services.db.fetchval("SELECT 1 FROM tasks WHERE id = $1", task_id))
