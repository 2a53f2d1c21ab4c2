"""Streamed chat completions from providers: what the API's ``stream: true`` reads, piece by piece.

``open_chat_stream(provider, request)`` starts the upstream answer and returns a ``ChatStream`` once the
upstream has accepted the request (its HTTP status is known), so a refusal or an outage is a classified
``ProviderError`` that the caller can retry or hand to the next route before anything reached its client.
Iterating the stream yields ``ChatDelta``s; the last one carries the upstream's usage when it reported it.
``aclose()`` stops the upstream (closing the connection of an unfinished answer).

* OpenAI-compatible upstreams: ``POST {base}/chat/completions`` with ``stream: true`` and
  ``stream_options.include_usage``; Server-Sent Events ``data: {chunk}`` lines until ``data: [DONE]``. Each
  choice of a chunk is a delta (its ``index``), with its text, its tool-call pieces and logprobs as sent.
* ``local``: the provider's answer (``shared.providers.local_chat``), one word or argument piece per delta,
  ``token_delay_ms`` (route option) apart.
* Any other provider: its whole (non-streamed) answer, one delta per choice.

A stream that ends without ``[DONE]`` (the upstream cut it) raises ``RetryableError`` from the iteration:
what was produced until then is the caller's to bill.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import msgspec

from shared.catalog.pricing import Usage
from shared.providers import local_chat
from shared.providers.base import Completed, GenerationRequest, PermanentError, Provider, RetryableError
from shared.providers.http import classify_status, malformed
from shared.providers.local import LocalProvider
from shared.providers.openai_protocol import OpenAICompatProvider, build_chat_request, parse_usage

log = logging.getLogger(__name__)
_decode = msgspec.json.decode


@dataclass(slots=True)
class ChatDelta:
    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None  # on the last delta, when the upstream reported its usage
    index: int = 0  # the choice
    tool_calls: list[dict[str, Any]] | None = None  # OpenAI's delta.tool_calls pieces, as the upstream sent them
    logprobs: dict[str, Any] | None = None  # OpenAI's choice.logprobs of this piece
    usage_details: dict[str, dict[str, int]] | None = None  # with ``usage``: its details, passed through


class ChatStream(Protocol):
    def __aiter__(self) -> AsyncIterator[ChatDelta]: ...

    async def aclose(self) -> None: ...


async def open_chat_stream(provider: Provider, request: GenerationRequest) -> ChatStream:
    if isinstance(provider, OpenAICompatProvider):
        return await _open_openai(provider, request)
    if isinstance(provider, LocalProvider):
        return _LocalStream(request)
    completed = await provider.start(request)
    if not isinstance(completed, Completed):
        raise PermanentError(f"{provider.name} cannot stream a chat completion", code="unsupported_model")
    return _OneShot(completed)


# -- OpenAI-compatible upstreams ---------------------------------------------------------------------------


async def _open_openai(provider: OpenAICompatProvider, request: GenerationRequest) -> _SseStream:
    body = build_chat_request(request.route, request.params)
    body["stream"] = True
    body["stream_options"] = {"include_usage": True}
    http, url, headers = provider.stream_target("/chat/completions")
    headers["Accept"] = "text/event-stream"
    try:
        response = await http.send(http.build_request("POST", url, headers=headers, json=body), stream=True)
    except httpx.TimeoutException as exc:
        raise RetryableError(f"{provider.name} did not answer in time", code="upstream_timeout") from exc
    except httpx.TransportError as exc:
        raise RetryableError(f"could not reach {provider.name}", code="upstream_unreachable") from exc
    if not response.is_success:
        try:
            raw = await response.aread()
        except httpx.HTTPError:
            raw = b""
        finally:
            await response.aclose()
        try:
            decoded: Any = json.loads(raw)
        except ValueError:
            decoded = raw[:300].decode(errors="replace")
        error = classify_status(provider.name, response.status_code, response.headers, decoded)
        log.warning("%s stream -> HTTP %d (%s): %.300s", provider.name, response.status_code, error.code, raw)
        raise error
    return _SseStream(provider.name, response)


class _SseStream:
    def __init__(self, provider: str, response: httpx.Response) -> None:
        self.provider = provider
        self.response = response

    async def __aiter__(self) -> AsyncIterator[ChatDelta]:
        try:
            async for line in self.response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                for delta in parse_chunk(self.provider, data):
                    yield delta
        except httpx.HTTPError as exc:
            raise RetryableError(f"{self.provider} cut the answer short", code="upstream_stream_cut") from exc
        raise RetryableError(f"{self.provider} cut the answer short", code="upstream_stream_cut")

    async def aclose(self) -> None:
        await self.response.aclose()


def parse_chunk(provider: str, data: str) -> list[ChatDelta]:
    """One ``chat.completion.chunk`` (or an error event) as deltas, one per choice with something in it, the
    usage on a delta of its own."""
    try:
        chunk = _decode(data)
    except msgspec.DecodeError:
        raise malformed(provider, "JSON in a stream event") from None
    if not isinstance(chunk, dict):
        raise malformed(provider, "an object in a stream event")
    if isinstance(chunk.get("error"), dict):
        raise RetryableError(f"{provider} failed while answering", code="upstream_stream_error")
    deltas = []
    choices = chunk.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        if isinstance(choice, dict) and (delta := _choice_delta(provider, choice)) is not None:
            deltas.append(delta)
    usage = chunk.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
        reported, details = parse_usage(usage, {}, "")
        deltas.append(ChatDelta(usage=reported, usage_details=details))
    return deltas


def _choice_delta(provider: str, choice: dict[str, Any]) -> ChatDelta | None:
    piece: dict[str, Any] = choice["delta"] if isinstance(choice.get("delta"), dict) else {}
    delta = ChatDelta(index=choice["index"] if isinstance(choice.get("index"), int) else 0)
    if isinstance(piece.get("content"), str):
        delta.text = piece["content"]
    if isinstance(piece.get("tool_calls"), list) and piece["tool_calls"]:
        if not all(isinstance(call, dict) and isinstance(call.get("index"), int) for call in piece["tool_calls"]):
            raise malformed(provider, "delta.tool_calls[].index")
        delta.tool_calls = piece["tool_calls"]
    if isinstance(choice.get("logprobs"), dict):
        delta.logprobs = choice["logprobs"]
    if isinstance(choice.get("finish_reason"), str):
        delta.finish_reason = choice["finish_reason"]
        if delta.finish_reason == "content_filter" and not delta.text:
            raise PermanentError(
                f"{provider} refused the request under its content policy", code="content_policy_violation"
            )
    if not delta.text and delta.finish_reason is None and not delta.tool_calls and delta.logprobs is None:
        return None
    return delta


# -- local and one-shot -------------------------------------------------------------------------------------


class _LocalStream:
    def __init__(self, request: GenerationRequest) -> None:
        self.request = request

    async def __aiter__(self) -> AsyncIterator[ChatDelta]:
        options, params = self.request.route.options, self.request.params
        if options.get("latency_ms"):
            await asyncio.sleep(float(options["latency_ms"]) / 1000)
        if options.get("error"):
            code = str(options["error"])
            raise PermanentError(f"the local provider was configured to fail with {code!r}", code=code)
        seed = int(params["seed"]) if "seed" in params else self.request.task_id.int % 2**32
        choices, usage = local_chat.answer(params, seed)
        delay = float(options.get("token_delay_ms", 0)) / 1000
        for index, choice in enumerate(choices):
            for fields in local_chat.stream_deltas(choice, index):
                if delay and "finish_reason" not in fields:
                    await asyncio.sleep(delay)
                yield ChatDelta(**fields)
        yield ChatDelta(usage=usage)

    async def aclose(self) -> None:
        return None


class _OneShot:
    """A provider's whole answer as a stream: each choice in one delta, then the usage."""

    def __init__(self, completed: Completed) -> None:
        self.completed = completed

    async def __aiter__(self) -> AsyncIterator[ChatDelta]:
        for index, output in enumerate(self.completed.outputs):
            calls = [{"index": n, **call} for n, call in enumerate(output.tool_calls or [])] or None
            yield ChatDelta(text=output.text or "", index=index, tool_calls=calls, logprobs=output.logprobs)
            yield ChatDelta(index=index, finish_reason=output.finish_reason or "stop")
        yield ChatDelta(usage=self.completed.usage, usage_details=self.completed.usage_details or None)

    async def aclose(self) -> None:
        return None
