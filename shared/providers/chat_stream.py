"""Streamed chat completions from providers: what the API's ``stream: true`` reads, piece by piece.

``open_chat_stream(provider, request)`` starts the upstream answer and returns a ``ChatStream`` once the
upstream has accepted the request (its HTTP status is known), so a refusal or an outage is a classified
``ProviderError`` that the caller can retry or hand to the next route before anything reached its client.
Iterating the stream yields ``ChatDelta``s; the last one carries the upstream's usage when it reported it.
``aclose()`` stops the upstream (closing the connection of an unfinished answer).

* OpenAI-compatible upstreams: ``POST {base}/chat/completions`` with ``stream: true`` and
  ``stream_options.include_usage``; Server-Sent Events ``data: {chunk}`` lines until ``data: [DONE]``.
* ``local``: the provider's reply, one word per delta, ``token_delay_ms`` (route option) apart.
* Any other provider: its whole (non-streamed) answer as one delta.

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

from shared.catalog.pricing import Usage
from shared.providers.base import Completed, GenerationRequest, PermanentError, Provider, RetryableError
from shared.providers.http import classify_status, malformed
from shared.providers.local import LocalProvider, count_tokens, reply_text
from shared.providers.openai_protocol import OpenAICompatProvider, build_chat_request

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ChatDelta:
    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None  # on the last delta, when the upstream reported its usage


class ChatStream(Protocol):
    def __aiter__(self) -> AsyncIterator[ChatDelta]: ...

    async def aclose(self) -> None: ...


def estimate_prompt_tokens(messages: list[dict[str, str]]) -> int:
    """The prompt's tokens the way the local provider counts them (for upstreams that report no usage)."""
    return sum(count_tokens(m.get("content", "")) + 4 for m in messages) + 2


async def open_chat_stream(provider: Provider, request: GenerationRequest) -> ChatStream:
    if isinstance(provider, OpenAICompatProvider):
        return await _open_openai(provider, request)
    if isinstance(provider, LocalProvider):
        return _LocalStream(request)
    completed = await provider.start(request)
    if not isinstance(completed, Completed):
        raise PermanentError(f"{provider.name} cannot stream a chat completion", code="unsupported_model")
    return _OneShot(completed.outputs[0].text or "" if completed.outputs else "", completed.usage)


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
                delta = parse_chunk(self.provider, data)
                if delta is not None:
                    yield delta
        except httpx.HTTPError as exc:
            raise RetryableError(f"{self.provider} cut the answer short", code="upstream_stream_cut") from exc
        raise RetryableError(f"{self.provider} cut the answer short", code="upstream_stream_cut")

    async def aclose(self) -> None:
        await self.response.aclose()


def parse_chunk(provider: str, data: str) -> ChatDelta | None:
    """One ``chat.completion.chunk`` (or an error event) as a delta; None for a chunk with nothing in it."""
    try:
        chunk = json.loads(data)
    except ValueError:
        raise malformed(provider, "JSON in a stream event") from None
    if not isinstance(chunk, dict):
        raise malformed(provider, "an object in a stream event")
    if isinstance(chunk.get("error"), dict):
        raise RetryableError(f"{provider} failed while answering", code="upstream_stream_error")
    delta = ChatDelta()
    choices = chunk.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        choice = choices[0]
        content = choice.get("delta", {}).get("content") if isinstance(choice.get("delta"), dict) else None
        if isinstance(content, str):
            delta.text = content
        if isinstance(choice.get("finish_reason"), str):
            delta.finish_reason = choice["finish_reason"]
            if delta.finish_reason == "content_filter" and not delta.text:
                raise PermanentError(
                    f"{provider} refused the request under its content policy", code="content_policy_violation"
                )
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(prompt, int) and isinstance(completion, int):
            delta.usage = Usage(input_tokens=max(0, prompt), output_tokens=max(0, completion))
    if not delta.text and delta.finish_reason is None and delta.usage is None:
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
        max_tokens = int(params.get("max_tokens", 256))
        text, tokens_in, tokens_out = reply_text(params["messages"], max_tokens, seed, params.get("temperature"))
        delay = float(options.get("token_delay_ms", 0)) / 1000
        for index, word in enumerate(text.split(" ")):
            if delay:
                await asyncio.sleep(delay)
            yield ChatDelta(text=word if index == 0 else f" {word}")
        finish = "length" if tokens_out >= max_tokens else "stop"
        yield ChatDelta(finish_reason=finish, usage=Usage(input_tokens=tokens_in, output_tokens=tokens_out))

    async def aclose(self) -> None:
        return None


class _OneShot:
    def __init__(self, text: str, usage: Usage) -> None:
        self.text = text
        self.usage = usage

    async def __aiter__(self) -> AsyncIterator[ChatDelta]:
        yield ChatDelta(text=self.text)
        yield ChatDelta(finish_reason="stop", usage=self.usage)

    async def aclose(self) -> None:
        return None
