"""Chat completions served in the API process: hold, upstream call(s), one settlement.

``begin`` checks the request against its model and each fallback model (``models``), and holds the most any of
them could cost. ``complete`` answers a plain request (``shared.openai_api.chat_response`` renders OpenAI's
``chat.completion``); ``open_stream`` starts the upstream answer (through the routes, so a failing upstream is
retried or replaced before the client sees a byte) and returns the Server-Sent Events to send
(``shared.openai_api.chat_events``). The legacy ``/v1/completions`` runs through the same functions.

Whatever ends a request — success, every route of every candidate failing, the upstream cutting the stream, the
client going away, the process being told to stop — it is settled once (``shared.openai_api.billing``): charged
at the price of the model that served it, from the upstream's reported usage or, for a cut stream, from the
prompt and what was produced until the cut. A plain completion is answered without waiting for the settlement's
commit (``shared.openai_api.settlements``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shared.accounts.keys import Principal
from shared.catalog import Catalog, Model
from shared.catalog.pricing import Usage
from shared.infra.background import BackgroundTasks
from shared.infra.db import Database
from shared.infra.errors import InsufficientCredits, InvalidInput, ModelUnavailable
from shared.infra.ids import uuid7
from shared.media.chat_images import inline_chat_images
from shared.media.sources import MediaSources
from shared.moderation.decisions import ContentPolicyViolation
from shared.moderation.events import Subject
from shared.moderation.pipeline import Moderator
from shared.moderation.texts import request_images
from shared.openai_api import pricing
from shared.openai_api.billing import RequestBill, open_bill, record_refusal
from shared.openai_api.chat_events import ChunkWriter, stream_events
from shared.openai_api.chat_fields import parse_chat_body
from shared.openai_api.chat_input import ChatCall, ChatInput, find_model, prepare_chat
from shared.openai_api.routing import call_candidates
from shared.providers import ProviderRegistry
from shared.providers.base import Completed, GenerationRequest, Provider
from shared.providers.chat_stream import ChatStream, open_chat_stream

SOURCE = "chat.completion"
T = TypeVar("T")


@dataclass(slots=True)
class ChatContext:
    """One request: its candidates (the model, then the fallback models that can serve it), its bill, and the
    candidate that served it once one has."""

    calls: list[ChatCall]
    bill: RequestBill
    body: ChatInput
    moderator: Moderator | None = None  # checks the generated text of a model whose outputs the policy moderates
    served: ChatCall = field(init=False)

    def __post_init__(self) -> None:
        self.served = self.calls[0]

    @property
    def call(self) -> ChatCall:
        """The candidate that served the request (before that: the requested model's)."""
        return self.served

    @property
    def hold_id(self) -> uuid.UUID:
        return self.bill.hold_id

    @property
    def request_id(self) -> uuid.UUID:
        return self.bill.request_id

    @property
    def completion_id(self) -> str:
        prefix = "chatcmpl" if self.bill.source == SOURCE else "cmpl"
        return f"{prefix}-{self.bill.request_id.hex}"

    def charge_for(self, usage: Usage | None) -> int:
        """What ``usage`` costs at the serving model's price, capped at the hold (as the settlement caps it)."""
        if usage is None:
            return 0
        return pricing.charge(self.served.model, usage, self.served.choices, self.bill.hold)

    def settle(self, usage: Usage | None, status: str, provider: str | None) -> asyncio.Future[int | None]:
        """Charge for ``usage`` (None: nothing) and record the request, in a task of its own."""
        units = pricing.billed_units(usage, self.served.choices) if usage is not None else {}
        return self.bill.settle(
            charge=self.charge_for(usage), units=units, status=status, model=self.served.model.id, provider=provider
        )

    def settle_blocked(self, usage: Usage | None, provider: str | None) -> asyncio.Future[int | None]:
        """An answer the moderation policy blocked: not charged (the hold is voided); its usage is recorded, as
        a failed request with the tokens the upstream produced (the operator's own cost)."""
        units = pricing.billed_units(usage, self.served.choices) if usage is not None else {}
        return self.bill.settle(charge=0, units=units, status="failed", model=self.served.model.id, provider=provider)

    def output_subject(self) -> Subject:
        return Subject.of(self.bill.principal, self.bill.source, self.served.model.id, "text",
                          request_id=self.bill.request_id)  # fmt: skip


async def begin(
    db: Database,
    background: BackgroundTasks,
    catalog: Catalog,
    providers: ProviderRegistry,
    principal: Principal,
    body: ChatInput,
    source: str = SOURCE,
    *,
    moderator: Moderator,
    media: MediaSources | None = None,
) -> ChatContext:
    """Check the request, moderate it and place its worst-case hold. A request for a model the caller may use that
    is refused here (bad parameters, an image that cannot be used, no provider, not enough credits) is recorded as
    a failed request; one the moderation policy blocks, as a blocked one (``shared.moderation``). Image parts are
    fetched and inlined through ``media`` (``shared.media.chat_images``) once the text passed moderation."""
    started = time.monotonic()
    model = find_model(catalog, principal, body.model, "text")
    fallbacks = [
        find_model(catalog, principal, model_id, "text", param=f"models[{index}]")
        for index, model_id in enumerate(body.fallback_models)
    ]
    try:
        calls = _candidates(providers, [model, *fallbacks], body)
        request_id = uuid7()
        await moderator.check_request(principal, calls[0].params, source=source, model=model.id, kind="text",
                                      request_id=request_id)  # fmt: skip
        if media is not None:
            await inline_chat_images(media, principal.account_id, [call.params for call in calls])
        subject = Subject.of(principal, source, model.id, "text", request_id=request_id)
        await moderator.check_images(subject, request_images(calls[0].params))
        bill = await open_bill(db, background, principal, max(call.hold for call in calls), source=source, kind="text",
                               model=model.id, started=started, request_id=request_id)  # fmt: skip
    except (InvalidInput, InsufficientCredits, ModelUnavailable):
        await record_refusal(db, principal, source=source, kind="text", model=model.id, started=started)
        raise
    return ChatContext(calls, bill, body, moderator)


async def begin_raw(
    db: Database,
    background: BackgroundTasks,
    catalog: Catalog,
    providers: ProviderRegistry,
    principal: Principal,
    raw: Any,
    *,
    parse: Callable[[Any], ChatInput] = parse_chat_body,
    source: str = SOURCE,
    media: MediaSources | None = None,
    moderator: Moderator,
) -> ChatContext:
    """``begin`` for a request body as the client sent it (``parse`` checks its fields). A body refused for its
    fields that names a text model the caller may use is recorded as a failed request of that model."""
    started = time.monotonic()
    try:
        body = parse(raw)
    except InvalidInput:
        model_id = raw.get("model") if isinstance(raw, dict) else None
        model = catalog.get(model_id) if isinstance(model_id, str) else None
        allowed = principal.allowed_models is None or model_id in principal.allowed_models
        if model is not None and model.kind == "text" and allowed:
            await record_refusal(db, principal, source=source, kind="text", model=model.id, started=started)
        raise
    return await begin(db, background, catalog, providers, principal, body, source, moderator=moderator, media=media)


def _candidates(providers: ProviderRegistry, models: list[Model], body: ChatInput) -> list[ChatCall]:
    """The request prepared for each model that can serve it, in order; the first model's refusal when none can."""
    calls: list[ChatCall] = []
    refusals: list[InvalidInput | ModelUnavailable] = []
    for model in models:
        try:
            calls.append(prepare_chat(providers, model, body))
        except (InvalidInput, ModelUnavailable) as exc:
            refusals.append(exc)
    if not calls:
        raise refusals[0]
    return calls


async def _routed(
    ctx: ChatContext,
    registry: ProviderRegistry,
    call: Callable[[Provider, GenerationRequest], Awaitable[T]],
    budget_s: float,
) -> tuple[T, str]:
    """``call`` through the candidates' routes; when none serves the request it is settled as failed."""
    try:
        result, provider, served = await call_candidates(
            registry, ctx.calls, lambda c: (c.model, c.params), call, budget_s=budget_s
        )
    except BaseException:
        await asyncio.shield(ctx.settle(None, "failed", None))
        raise
    ctx.served = served
    return result, provider


async def _start(provider: Provider, request: GenerationRequest) -> Completed:
    result = await provider.start(request)
    assert isinstance(result, Completed)
    return result


async def complete(
    ctx: ChatContext, registry: ProviderRegistry, budget_s: float, moderator: Moderator
) -> tuple[Completed, str]:
    """A plain (non-streamed) request: the upstream's answer and the provider that served it. Its settlement
    runs on its own: the answer does not wait for the commit. An answer the moderation policy blocks (a model whose
    outputs it checks) is not returned nor charged; its usage is recorded, as a failed request."""
    completed, provider = await _routed(ctx, registry, _start, budget_s)
    try:
        await moderator.check_outputs(ctx.output_subject(), completed.outputs)
    except ContentPolicyViolation:
        ctx.settle_blocked(completed.usage, provider)
        raise
    ctx.settle(completed.usage, "succeeded", provider)
    return completed, provider


async def open_stream(
    ctx: ChatContext, registry: ProviderRegistry, budget_s: float, writer: Callable[[str], ChunkWriter]
) -> AsyncIterator[bytes]:
    """Start the upstream answer; the returned iterator yields the SSE events (``writer(provider)`` renders them)
    and settles when it ends."""
    stream, provider = await _routed(ctx, registry, open_chat_stream, budget_s)
    return stream_events(ctx, stream, provider, writer(provider))


__all__ = ["SOURCE", "ChatContext", "ChatStream", "begin", "begin_raw", "complete", "open_stream"]
