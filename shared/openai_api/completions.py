"""Legacy ``POST /v1/completions`` (prompt in, text out) for the catalog's text models, which older clients still
call. The prompt is sent to the model as one user message through the chat machinery (``shared.openai_api.chat``:
the same holds, routes, fallbacks and settlement; usage ``source`` ``text_completion``), and the answer comes back
in the legacy shape: ``text_completion`` objects, plain or streamed.

Fields: ``model``, ``prompt`` (a string, or a list holding one), ``max_tokens`` (16 by default, as OpenAI's),
``temperature``, ``top_p``, ``n``, ``stream`` / ``stream_options``, ``stop``, ``logprobs`` (0-5: that many
alternatives per token, in the legacy ``{tokens, token_logprobs, top_logprobs, text_offset}`` shape; it needs the
model's ``logprobs``), ``echo`` (the prompt before the text; not with ``logprobs``), ``best_of`` (only equal to
``n``), ``suffix`` (refused: no model here inserts text), ``frequency_penalty``, ``presence_penalty``,
``logit_bias``, ``seed``, ``user``, and Conduit's ``models`` / ``provider``. Anything else is refused with ``400``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Any, Literal

import msgspec

from shared.infra.errors import InvalidInput
from shared.openai_api.chat_events import usage_numbers
from shared.openai_api.chat_fields import ChatInput, parse_chat_body
from shared.providers.base import Completed
from shared.providers.chat_stream import ChatDelta

SOURCE = "text_completion"
DEFAULT_MAX_TOKENS = 16
SHARED = ("model", "max_tokens", "temperature", "top_p", "n", "stream", "stream_options", "stop",
          "frequency_penalty", "presence_penalty", "logit_bias", "seed", "user", "models", "provider")  # fmt: skip
_encode = msgspec.json.encode


@dataclass(slots=True)
class LegacyInput(ChatInput):
    """A chat request made from a legacy one, with what the legacy answer needs."""

    prompt: str = ""
    echo: bool = False


def parse_completion_body(raw: Any) -> LegacyInput:
    if not isinstance(raw, dict):
        raise InvalidInput("the body must be a JSON object", code="invalid_request")
    present = {key: value for key, value in raw.items() if value is not None}
    unknown = sorted(set(present) - {*SHARED, "prompt", "logprobs", "echo", "best_of", "suffix"})
    if unknown:
        raise InvalidInput(f"Conduit does not support the field {unknown[0]!r}", param=unknown[0])
    prompt = present.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise InvalidInput("prompt must be a non-empty string (one prompt per request; no token arrays)",
                           param="prompt")  # fmt: skip
    if "suffix" in present:
        raise InvalidInput("Conduit does not support suffix (no model here inserts text)", param="suffix")
    n = present.get("n", 1)
    if present.get("best_of", n) != n:
        raise InvalidInput("best_of is only supported equal to n", param="best_of")
    echo = present.get("echo", False)
    if not isinstance(echo, bool):
        raise InvalidInput("echo must be true or false", param="echo")
    chat_body: dict[str, Any] = {name: present[name] for name in SHARED if name in present}
    chat_body["messages"] = [{"role": "user", "content": prompt}]
    chat_body.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
    if "logprobs" in present:
        top = present["logprobs"]
        if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= 5:
            raise InvalidInput("logprobs must be an integer from 0 to 5", param="logprobs")
        if echo:
            raise InvalidInput("Conduit does not support echo with logprobs", param="echo")
        chat_body.update(logprobs=True, top_logprobs=top)
    chat = parse_chat_body(chat_body)
    return LegacyInput(
        **{field.name: getattr(chat, field.name) for field in fields(ChatInput)}, prompt=prompt, echo=echo
    )


def legacy_logprobs(logprobs: dict[str, Any] | None, offset: int) -> dict[str, Any] | None:
    """Chat logprobs (``{"content": [{token, logprob, top_logprobs}]}``) in the legacy shape; ``offset`` is the
    text offset of the first token."""
    if not logprobs or not isinstance(logprobs.get("content"), list):
        return None
    tokens, values, tops, offsets = [], [], [], []
    for entry in logprobs["content"]:
        tokens.append(entry["token"])
        values.append(entry["logprob"])
        tops.append({top["token"]: top["logprob"] for top in entry.get("top_logprobs") or []})
        offsets.append(offset)
        offset += len(entry["token"])
    return {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets}


class TextChoice(msgspec.Struct):
    text: str
    index: int
    logprobs: dict[str, Any] | None
    finish_reason: str


class TextCompletion(msgspec.Struct):
    """OpenAI's legacy ``text_completion``."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    provider: str
    choices: list[TextChoice]
    usage: dict[str, Any]


def text_completion(
    completion_id: str, model: str, provider: str, body: LegacyInput, completed: Completed
) -> TextCompletion:
    prefix = body.prompt if body.echo else ""
    choices = [
        TextChoice(
            text=prefix + (output.text or ""),
            index=index,
            logprobs=legacy_logprobs(output.logprobs, len(prefix)),
            finish_reason=output.finish_reason or "stop",
        )
        for index, output in enumerate(completed.outputs)
    ]
    return TextCompletion(id=completion_id, object="text_completion", created=int(time.time()), model=model,
                          provider=provider, choices=choices,
                          usage=usage_numbers(completed.usage, completed.usage_details))  # fmt: skip


class LegacyChunks:
    """Streamed ``text_completion`` chunks (``shared.openai_api.chat_events.ChunkWriter``)."""

    def __init__(self, completion_id: str, model: str, provider: str, body: LegacyInput) -> None:
        head = _encode({"id": completion_id, "object": "text_completion", "created": int(time.time()),
                        "model": model, "provider": provider})  # fmt: skip
        self.head = b"data: " + head[:-1]
        self.prefix = body.prompt if body.echo else ""
        self.offsets: dict[int, int] = {}

    def _event(self, index: int, text: str, logprobs: dict[str, Any] | None, finish: str | None) -> bytes:
        first = index not in self.offsets
        if first:
            self.offsets[index] = len(self.prefix)
        choice = {"text": (self.prefix if first else "") + text, "index": index,
                  "logprobs": legacy_logprobs(logprobs, self.offsets[index]), "finish_reason": finish}  # fmt: skip
        self.offsets[index] += len(text)
        return self.head + b',"choices":[' + _encode(choice) + b"]}\n\n"

    def delta(self, delta: ChatDelta) -> bytes:
        return self._event(delta.index, delta.text, delta.logprobs, None) if delta.text else b""

    def finish(self, index: int, reason: str) -> bytes:
        return self._event(index, "", None, reason)

    def usage(self, numbers: dict[str, Any]) -> bytes:
        return self.head + b',"choices":[],"usage":' + _encode(numbers) + b"}\n\n"
