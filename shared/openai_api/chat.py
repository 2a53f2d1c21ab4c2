"""Chat completions served in the API process: hold, upstream call(s), one settlement.

``complete`` answers a plain request with OpenAI's ``chat.completion`` object. ``open_stream`` starts the
upstream answer (through the routes, so a failing upstream is retried or replaced before the client sees a
byte) and returns the Server-Sent Events to send: ``chat.completion.chunk`` events, a usage chunk when asked
(``stream_options.include_usage``), then ``data: [DONE]``.

Whatever ends a request — success, every route failing, the upstream cutting the stream, the client going
away, the process being told to stop — it is settled once (``billing.settle_request``): charged from the
upstream's reported usage, or, for a cut stream, from the prompt and the text produced until the cut. The
settlement runs as its own task, so the cancellation of the request that triggered it cannot interrupt it; a
plain completion is answered without waiting for it (``shared.openai_api.settlements``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import msgspec

from shared.accounts.keys import Principal
from shared.catalog import Catalog
from shared.catalog.pricing import Usage, cost
from shared.infra.background import BackgroundTasks
from shared.infra.db import Database
from shared.infra.errors import InsufficientCredits, InvalidInput, ModelUnavailable
from shared.infra.ids import uuid7
from shared.ledger import place_request_hold, record_refused_request, settle_request
from shared.openai_api import settlements
from shared.openai_api.chat_input import ChatCall, ChatInput, find_model, prepare_chat
from shared.openai_api.routing import call_routes
from shared.providers import ProviderRegistry
from shared.providers.base import Completed, GenerationRequest, Provider, ProviderError, RetryableError
from shared.providers.chat_stream import ChatStream, estimate_prompt_tokens, open_chat_stream
from shared.providers.local import count_tokens

log = logging.getLogger(__name__)

SOURCE = "chat.completion"
_encode = msgspec.json.encode
SETTLE_RETRY_PAUSES_S = (0.1, 0.5, 2.0)
_TRANSIENT = (asyncpg.PostgresConnectionError, asyncpg.DeadlockDetectedError, OSError)  # worth settling again
T = TypeVar("T")


@dataclass(slots=True)
class ChatContext:
    """One request's identity and money: who asked, for what, the hold, and when it started."""

    db: Database
    background: BackgroundTasks  # the process's, where settlements run
    principal: Principal
    call: ChatCall
    request_id: uuid.UUID
    hold_id: uuid.UUID
    started: float

    @property
    def completion_id(self) -> str:
        return f"chatcmpl-{self.request_id.hex}"

    def charge_for(self, usage: Usage | None) -> int:
        """What ``usage`` costs, capped at the hold (the settlement caps it the same way)."""
        return min(cost(self.call.model.pricing, _with_request(usage)), self.call.hold) if usage is not None else 0

    def settle(self, usage: Usage | None, status: str, provider: str | None) -> asyncio.Task[int | None]:
        """Charge for ``usage`` (None: nothing) and record the request, in a task of its own
        (``shared.openai_api.settlements``)."""
        billed = _with_request(usage) if usage is not None else None
        settlement = _settle_retrying(
            self.db,
            hold_id=self.hold_id,
            request_id=self.request_id,
            principal=self.principal,
            charge=self.charge_for(usage),
            status=status,
            source=SOURCE,
            model=self.call.model.id,
            kind="text",
            provider=provider,
            units=billed.public() if billed is not None else {},
            latency_ms=int((time.monotonic() - self.started) * 1000),
        )
        return settlements.detach(self.background, settlement, self.principal.account_id)


async def _settle_retrying(db: Database, **settlement: Any) -> int | None:
    """``settle_request``, tried again after a lost connection or a deadlock (settling twice changes nothing).
    If it still fails the hold stays pending and the abandoned-hold sweep voids it: not charged, never twice.
    Never raises: nobody may be waiting for it (the answer went out), and a caller that is (a failed request)
    must answer with its own error."""
    for pause in (*SETTLE_RETRY_PAUSES_S, None):
        try:
            return await settle_request(db, **settlement)
        except _TRANSIENT as exc:
            failure: Exception = exc
            if pause is not None:
                log.warning("settling request %s failed (%s); retrying", settlement["request_id"], exc)
                await asyncio.sleep(pause)
                continue
        except Exception as exc:
            failure = exc
        break
    log.error("could not settle request %s (%s): the abandoned-hold sweep will void its hold",
              settlement["request_id"], failure)  # fmt: skip
    return None


def _with_request(usage: Usage) -> Usage:
    return Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, requests=1)


async def begin(
    db: Database,
    background: BackgroundTasks,
    catalog: Catalog,
    providers: ProviderRegistry,
    principal: Principal,
    body: ChatInput,
) -> ChatContext:
    """Check the request and place its worst-case hold. A request for a model the caller may use that is refused
    here (bad parameters, no provider, not enough credits) is recorded as a failed request."""
    started = time.monotonic()
    model = find_model(catalog, principal, body.model, "text")
    try:
        call = prepare_chat(providers, model, body)
        hold_id = await _hold(db, background, principal, call.hold, f"{call.model.id} {SOURCE}")
    except (InvalidInput, InsufficientCredits, ModelUnavailable):
        latency_ms = int((time.monotonic() - started) * 1000)
        await record_refused_request(
            db, principal=principal, source=SOURCE, model=model.id, kind="text", latency_ms=latency_ms
        )
        raise
    return ChatContext(db, background, principal, call, uuid7(), hold_id, started)


async def _hold(
    db: Database, background: BackgroundTasks, principal: Principal, amount: int, description: str
) -> uuid.UUID:
    """The request's hold. Refused for want of credits while earlier requests of the account are still settling
    here: tried once more when they are done (their unused holds come back)."""
    try:
        return await place_request_hold(db, principal, amount, description)
    except InsufficientCredits:
        if not await settlements.settled(background, principal.account_id):
            raise
    return await place_request_hold(db, principal, amount, description)


async def _routed(
    ctx: ChatContext,
    registry: ProviderRegistry,
    call: Callable[[Provider, GenerationRequest], Awaitable[T]],
    budget_s: float,
) -> tuple[T, str]:
    """``call`` through the model's routes; when no route serves the request it is settled as failed."""
    try:
        return await call_routes(registry, ctx.call.model, ctx.call.params, call, budget_s=budget_s)
    except BaseException:
        await asyncio.shield(ctx.settle(None, "failed", None))
        raise


async def _start(provider: Provider, request: GenerationRequest) -> Completed:
    result = await provider.start(request)
    assert isinstance(result, Completed)
    return result


async def complete(ctx: ChatContext, registry: ProviderRegistry, budget_s: float) -> tuple[dict[str, Any], int]:
    """A plain (non-streamed) completion. Returns (OpenAI's ``chat.completion`` object, credits charged)."""
    call = ctx.call
    completed, provider = await _routed(ctx, registry, _start, budget_s)
    usage = completed.usage
    ctx.settle(usage, "succeeded", provider)  # runs on its own: the answer does not wait for the commit
    output = completed.outputs[0] if completed.outputs else None
    body = {
        "id": ctx.completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": call.model.id,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": output.text if output else "", "refusal": None},
                "logprobs": None,
                "finish_reason": (output.finish_reason if output else None) or "stop",
            }
        ],
        "usage": {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens,
        },
    }
    return body, ctx.charge_for(usage)


async def open_stream(ctx: ChatContext, registry: ProviderRegistry, budget_s: float) -> AsyncIterator[bytes]:
    """Start the upstream answer; the returned iterator yields the SSE events and settles when it ends."""
    stream, provider = await _routed(ctx, registry, open_chat_stream, budget_s)
    return _events(ctx, stream, provider)


async def _events(ctx: ChatContext, stream: ChatStream, provider: str) -> AsyncIterator[bytes]:
    head = _encode({"id": ctx.completion_id, "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": ctx.call.model.id})[:-1] + b',"choices":[{"index":0,'  # fmt: skip
    produced: list[str] = []
    ends = time.monotonic() + ctx.call.model.max_runtime_s  # a stream never outlives the model's longest run
    usage: Usage | None = None
    finish = "stop"
    status = "canceled"  # unless the loop below gets to an end
    try:
        yield b"data: " + head + b'"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n'
        try:
            async for delta in stream:
                if time.monotonic() > ends:
                    raise RetryableError(f"{provider} did not finish within the model's time", code="upstream_timeout")
                if delta.text:
                    produced.append(delta.text)
                    yield (
                        b"data: "
                        + head
                        + b'"delta":{"content":'
                        + _encode(delta.text)
                        + b'},"finish_reason":null}]}\n\n'
                    )
                if delta.finish_reason:
                    finish = delta.finish_reason
                if delta.usage is not None:
                    usage = delta.usage
        except ProviderError as exc:
            status = "failed"
            log.warning("chat stream %s from %s ended early: %s", ctx.request_id, provider, exc.code)
            error = {"error": {"type": "upstream_error", "code": exc.code, "message": exc.message, "param": None}}
            yield b"data: " + _encode(error) + b"\n\n"
            return
        status = "succeeded"
        usage = usage or _produced_usage(ctx.call.params, produced)
        yield b"data: " + head + b'"delta":{},"finish_reason":' + _encode(finish) + b"}]}\n\n"
        if ctx.call.include_usage:
            numbers = {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
                       "total_tokens": usage.input_tokens + usage.output_tokens}  # fmt: skip
            yield b"data: " + head[: head.rindex(b'"choices"')] + b'"choices":[],"usage":' + _encode(numbers) + b"}\n\n"
        yield b"data: [DONE]\n\n"
    finally:
        if usage is None and produced:
            usage = _produced_usage(ctx.call.params, produced)
        settlement = settlements.detach(
            ctx.background, _close_and_settle(ctx, stream, usage, status, provider), ctx.principal.account_id
        )
        with contextlib.suppress(asyncio.CancelledError):  # the client went away: the settlement goes on alone
            await asyncio.shield(settlement)


async def _close_and_settle(
    ctx: ChatContext, stream: ChatStream, usage: Usage | None, status: str, provider: str
) -> int | None:
    try:
        await stream.aclose()
    except Exception as exc:
        log.debug("closing the upstream stream failed: %s", exc)
    return await ctx.settle(usage, status, provider)


def _produced_usage(params: dict[str, Any], produced: list[str]) -> Usage:
    """The usage of an answer the upstream did not report: the prompt, and the text produced so far."""
    return Usage(input_tokens=estimate_prompt_tokens(params["messages"]), output_tokens=count_tokens("".join(produced)))
