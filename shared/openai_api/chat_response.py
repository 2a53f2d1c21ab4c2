"""OpenAI's ``chat.completion`` object for a plain (non-streamed) answer: one choice per upstream choice, each with
its text or its tool calls (``finish_reason`` ``"tool_calls"``) and its logprobs; ``usage`` with the upstream's
token details passed through; the model and the ``provider`` that served it (OpenRouter's field)."""

from __future__ import annotations

import time
from typing import Any, Literal

import msgspec

from shared.openai_api.chat_events import usage_numbers
from shared.providers.base import Completed, Output


class ChatMessage(msgspec.Struct):
    role: Literal["assistant"]
    content: str | None
    refusal: str | None
    tool_calls: list[dict[str, Any]] | msgspec.UnsetType = msgspec.UNSET


class ChatChoice(msgspec.Struct):
    index: int
    message: ChatMessage
    logprobs: dict[str, Any] | None
    finish_reason: str


class ChatCompletion(msgspec.Struct):
    """OpenAI's ``chat.completion`` (``usage``: OpenAI's token counts and the upstream's details)."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    provider: str
    choices: list[ChatChoice]
    usage: dict[str, Any]


def chat_completion(completion_id: str, model: str, provider: str, completed: Completed) -> ChatCompletion:
    outputs = completed.outputs or [Output(type="text", text="")]
    return ChatCompletion(
        id=completion_id,
        object="chat.completion",
        created=int(time.time()),
        model=model,
        provider=provider,
        choices=[_choice(index, output) for index, output in enumerate(outputs)],
        usage=usage_numbers(completed.usage, completed.usage_details),
    )


def _choice(index: int, output: Output) -> ChatChoice:
    message = ChatMessage(role="assistant", content=output.text, refusal=None)
    if output.tool_calls:
        message.tool_calls = output.tool_calls
    elif output.text is None:
        message.content = ""
    default = "tool_calls" if output.tool_calls else "stop"
    return ChatChoice(index=index, message=message, logprobs=output.logprobs,
                      finish_reason=output.finish_reason or default)  # fmt: skip
