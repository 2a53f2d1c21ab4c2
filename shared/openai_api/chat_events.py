"""A streamed answer as Server-Sent Events, settled once when it ends however it ends.

``stream_events`` reads the upstream's deltas and hands each to a ``ChunkWriter``, which renders the events of
the API at hand: ``ChatChunks`` (``chat.completion.chunk``, below) or the legacy ``text_completion`` chunks
(``shared.openai_api.completions``). After the last delta come each choice's finish, the usage chunk when the
client asked (``stream_options.include_usage``), then ``data: [DONE]``; an upstream failure mid-stream is an
``error`` event instead.

``chat.completion.chunk`` events are OpenAI's: a choice starts with ``{"role": "assistant", "content": ""}``
(text) or with ``{"role": "assistant", "content": null, "tool_calls": [{"index", "id", "type": "function",
"function": {"name", "arguments": ""}}]}`` (a tool call), then text pieces or ``tool_calls`` pieces carrying
argument fragments (``{"index", "function": {"arguments"}}``), each with its ``logprobs``, and a last chunk with
an empty delta and the ``finish_reason``. Every chunk names the ``provider`` that served it, as OpenRouter does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from shared.catalog.pricing import Usage
from shared.moderation.decisions import ContentPolicyViolation
from shared.openai_api import settlements
from shared.providers.base import ProviderError, RetryableError
from shared.providers.chat_stream import ChatDelta, ChatStream
from shared.providers.local import count_tokens
from shared.providers.local_chat import prompt_tokens

if TYPE_CHECKING:
    from shared.openai_api.chat import ChatContext

log = logging.getLogger(__name__)
_encode = msgspec.json.encode


class ChunkWriter(Protocol):
    def delta(self, delta: ChatDelta) -> bytes:
        """The events of one upstream delta (possibly none: ``b""``)."""
        ...

    def finish(self, index: int, reason: str) -> bytes: ...

    def usage(self, numbers: dict[str, Any]) -> bytes: ...


def usage_numbers(usage: Usage, details: dict[str, dict[str, int]] | None) -> dict[str, Any]:
    """OpenAI's ``usage`` object, with the upstream's token details passed through."""
    numbers: dict[str, Any] = {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
                               "total_tokens": usage.input_tokens + usage.output_tokens}  # fmt: skip
    numbers.update(details or {})
    return numbers


class ChatChunks:
    """``chat.completion.chunk`` events. The fixed head of each choice's chunks is encoded once."""

    def __init__(self, completion_id: str, model: str, provider: str) -> None:
        head = _encode({"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()),
                        "model": model, "provider": provider})  # fmt: skip
        self.head = b"data: " + head[:-1]
        self.heads: dict[int, bytes] = {}
        self.opened: set[int] = set()

    def _choice(self, index: int) -> bytes:
        head = self.heads.get(index)
        if head is None:
            head = self.heads[index] = self.head + b',"choices":[{"index":' + str(index).encode() + b","
        return head

    def delta(self, delta: ChatDelta) -> bytes:
        head = self._choice(delta.index)
        opening = b""
        if delta.index not in self.opened:
            self.opened.add(delta.index)
            if delta.tool_calls and not delta.text:
                return (head + b'"delta":{"role":"assistant","content":null,"tool_calls":' + _encode(delta.tool_calls)
                        + b'},"logprobs":null,"finish_reason":null}]}\n\n')  # fmt: skip
            opening = head + b'"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,' \
                             b'"finish_reason":null}]}\n\n'  # fmt: skip
        logprobs = b"null" if delta.logprobs is None else _encode(delta.logprobs)
        if delta.tool_calls:
            body = b'"delta":{"tool_calls":' + _encode(delta.tool_calls) + b"}"
        elif delta.text:
            body = b'"delta":{"content":' + _encode(delta.text) + b"}"
        elif delta.logprobs is None:
            return opening
        else:
            body = b'"delta":{}'
        return opening + head + body + b',"logprobs":' + logprobs + b',"finish_reason":null}]}\n\n'

    def finish(self, index: int, reason: str) -> bytes:
        head = self._choice(index)
        opening = b""
        if index not in self.opened:  # a choice that produced nothing still starts like the others
            self.opened.add(index)
            opening = head + b'"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n'
        return opening + head + b'"delta":{},"logprobs":null,"finish_reason":' + _encode(reason) + b"}]}\n\n"

    def usage(self, numbers: dict[str, Any]) -> bytes:
        return self.head + b',"choices":[],"usage":' + _encode(numbers) + b"}\n\n"


async def stream_events(
    ctx: ChatContext, stream: ChatStream, provider: str, writer: ChunkWriter
) -> AsyncIterator[bytes]:
    call = ctx.served
    produced: list[str] = []
    ends = time.monotonic() + call.model.max_runtime_s  # a stream never outlives the model's longest run
    usage: Usage | None = None
    details: dict[str, dict[str, int]] | None = None
    finishes: dict[int, str] = {}
    choices: dict[int, list[str]] = {}  # each choice's text and tool-call arguments, for the output check
    status = "canceled"  # unless the loop below gets to an end
    try:
        try:
            async for delta in stream:
                if time.monotonic() > ends:
                    raise RetryableError(f"{provider} did not finish within the model's time", code="upstream_timeout")
                start = len(produced)
                if delta.text:
                    produced.append(delta.text)
                for piece in delta.tool_calls or ():
                    function = piece.get("function") or {}
                    if function.get("name"):
                        produced.append(f" {function['name']} ")
                    produced.append(str(function.get("arguments") or ""))
                choices.setdefault(delta.index, []).extend(produced[start:])
                if (delta.text or delta.tool_calls or delta.logprobs is not None) and (events := writer.delta(delta)):
                    yield events
                if delta.finish_reason:
                    finishes[delta.index] = delta.finish_reason
                if delta.usage is not None:
                    usage, details = delta.usage, delta.usage_details
        except ProviderError as exc:
            status = "failed"
            log.warning("chat stream %s from %s ended early: %s", ctx.request_id, provider, exc.code)
            error = {"error": {"type": "upstream_error", "code": exc.code, "message": exc.message, "param": None}}
            yield b"data: " + _encode(error) + b"\n\n"
            return
        usage = usage or _produced_usage(call.params, produced)
        if ctx.moderator is not None:
            try:
                texts = ["".join(choices[index]) for index in sorted(choices)]
                await ctx.moderator.check_output_texts(ctx.output_subject(), texts)
            except ContentPolicyViolation as exc:
                status = "blocked"
                error = {"error": {"type": "invalid_request_error", "code": exc.code, "message": exc.message,
                                   "param": None}}  # fmt: skip
                yield b"data: " + _encode(error) + b"\n\n"
                return
        status = "succeeded"
        for index in range(max(call.choices, len(finishes))):
            yield writer.finish(index, finishes.get(index, "stop"))
        if call.include_usage:
            yield writer.usage(usage_numbers(usage, details))
        yield b"data: [DONE]\n\n"
    finally:
        if usage is None and produced:
            usage = _produced_usage(call.params, produced)
        settlement = settlements.detach(ctx.bill.background, _close_and_settle(ctx, stream, usage, status, provider),
                                        ctx.bill.principal.account_id)  # fmt: skip
        with contextlib.suppress(asyncio.CancelledError):  # the client went away: the settlement goes on alone
            await asyncio.shield(settlement)


async def _close_and_settle(
    ctx: ChatContext, stream: ChatStream, usage: Usage | None, status: str, provider: str
) -> int | None:
    try:
        await stream.aclose()
    except Exception as exc:
        log.debug("closing the upstream stream failed: %s", exc)
    if status == "blocked":  # the moderation policy blocked the answer: not charged
        return await ctx.settle_blocked(usage, provider)
    return await ctx.settle(usage, status, provider)


def _produced_usage(params: dict[str, Any], produced: list[str]) -> Usage:
    """The usage of an answer the upstream did not report: the prompt, and what was produced so far."""
    return Usage(input_tokens=prompt_tokens(params), output_tokens=count_tokens("".join(produced)))
