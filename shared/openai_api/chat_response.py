"""OpenAI's ``chat.completion`` object for a plain (non-streamed) answer: one choice per upstream choice, each with
its text or its tool calls (``finish_reason`` ``"tool_calls"``) and its logprobs; ``usage`` with the upstream's
token details passed through; the model and the ``provider`` that served it (OpenRouter's field)."""

from __future__ import annotations

import time
from typing import Any

from shared.openai_api.chat_events import usage_numbers
from shared.providers.base import Completed, Output


def chat_completion(completion_id: str, model: str, provider: str, completed: Completed) -> dict[str, Any]:
    outputs = completed.outputs or [Output(type="text", text="")]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "provider": provider,
        "choices": [_choice(index, output) for index, output in enumerate(outputs)],
        "usage": usage_numbers(completed.usage, completed.usage_details),
    }


def _choice(index: int, output: Output) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": output.text, "refusal": None}
    if output.tool_calls:
        message["tool_calls"] = output.tool_calls
    elif output.text is None:
        message["content"] = ""
    default = "tool_calls" if output.tool_calls else "stop"
    return {"index": index, "message": message, "logprobs": output.logprobs,
            "finish_reason": output.finish_reason or default}  # fmt: skip
