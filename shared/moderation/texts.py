"""The text a request carries, for moderation: prompts, negative prompts, system prompts, embedding inputs and
the text of chat messages (string content, ``text`` parts, ``refusal`` text and tool-call arguments). Media parts
are not text: an image check would take them from the same parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TEXT_FIELDS = ("prompt", "negative_prompt", "system", "system_prompt", "input")


def request_texts(params: Mapping[str, Any]) -> list[str]:
    """The texts of a request's parameters (a task's input, a chat or embedding request's upstream parameters)."""
    texts: list[str] = []
    for name in TEXT_FIELDS:
        _add(texts, params.get(name))
    messages = params.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, Mapping):
                texts.extend(message_texts(message))
    return texts


def message_texts(message: Mapping[str, Any]) -> list[str]:
    texts: list[str] = []
    content = message.get("content")
    if isinstance(content, str):
        _add(texts, content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "text":
                _add(texts, part.get("text"))
    _add(texts, message.get("refusal"))
    for call in message.get("tool_calls") or ():
        if isinstance(call, Mapping) and isinstance(call.get("function"), Mapping):
            _add(texts, call["function"].get("arguments"))
    return texts


def _add(texts: list[str], value: Any) -> None:
    if isinstance(value, str):
        if value:
            texts.append(value)
    elif isinstance(value, list):
        texts.extend(item for item in value if isinstance(item, str) and item)
