"""What synchronous OpenAI-compatible requests hold and are charged, computed here and handed to the ledger's
hold and settlement functions (``shared.ledger.request_holds``).

* The hold covers the worst case: the prompt's upper bound in tokens (no tokenizer emits more tokens than UTF-8
  bytes: the messages' text, tool calls and names, plus the tool schemas and the response format, and
  ``IMAGE_TOKENS`` per image), capped at the model's ``max_context`` when declared; plus ``max_tokens`` for each
  of the ``n`` choices. A request with fallback models holds the most any of them could cost.
* The charge is what the model that served reports (cached input tokens at the model's cached price), each of
  the ``n`` choices counted once as a request for per-request prices, never more than the hold.
"""

from __future__ import annotations

import json
from typing import Any

from shared.catalog import Model
from shared.catalog.pricing import MESSAGE_OVERHEAD_TOKENS, PROMPT_OVERHEAD_TOKENS, Usage, cost

IMAGE_TOKENS = 2048  # an image's share of the prompt, at most (the hold's bound; providers count ~85-1,600)


def _bytes(value: Any) -> int:
    return len(value.encode()) if isinstance(value, str) else len(json.dumps(value, separators=(",", ":")).encode())


def prompt_bound(params: dict[str, Any], max_context: int | None = None) -> int:
    """An upper bound on the prompt's tokens."""
    total = PROMPT_OVERHEAD_TOKENS
    for message in params.get("messages", []):
        total += MESSAGE_OVERHEAD_TOKENS + _bytes(message.get("name", ""))
        content = message.get("content")
        for part in content if isinstance(content, list) else [content]:
            if isinstance(part, dict):
                total += IMAGE_TOKENS if part.get("type") == "image_url" else _bytes(part.get("text", ""))
            elif isinstance(part, str):
                total += _bytes(part)
        if message.get("tool_calls"):
            total += _bytes(message["tool_calls"])
        total += _bytes(message.get("tool_call_id", ""))
    for field in ("tools", "tool_choice", "response_format"):
        if field in params:
            total += _bytes(params[field])
    return min(total, max_context) if max_context else total


def choices(params: dict[str, Any]) -> int:
    return int(params.get("n") or 1)


def worst_case(model: Model, params: dict[str, Any]) -> int:
    """The hold for a chat (or legacy completion) request to ``model`` with these parameters."""
    context = model.capabilities.model.max_context
    usage = Usage(
        input_tokens=prompt_bound(params, context),
        output_tokens=int(params.get("max_tokens", 0)) * choices(params),
        requests=choices(params),
    )
    return cost(model.pricing, usage)


def embedding_worst_case(model: Model, inputs: list[str]) -> int:
    """The hold for embedding ``inputs``: every byte a token, each input capped at the model's ``max_context``."""
    context = model.capabilities.model.max_context
    tokens = sum(min(len(text.encode()), context) if context else len(text.encode()) for text in inputs)
    return cost(model.pricing, Usage(input_tokens=tokens, requests=1))


def _billed(usage: Usage, requests: int) -> Usage:
    """The upstream's usage, counted as ``requests`` requests (the choices of one)."""
    return Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                 cached_input_tokens=usage.cached_input_tokens, reasoning_tokens=usage.reasoning_tokens,
                 requests=requests)  # fmt: skip


def charge(model: Model, usage: Usage, requests: int, hold: int) -> int:
    """What ``usage`` costs on ``model`` (``requests`` of them for per-request prices), capped at ``hold``."""
    return min(cost(model.pricing, _billed(usage, requests)), hold)


def billed_units(usage: Usage, requests: int) -> dict[str, Any]:
    """The usage record's units."""
    return _billed(usage, requests).public()
