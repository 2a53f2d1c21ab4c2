"""The text a request carries, for moderation: prompts, negative prompts, system prompts, embedding inputs and
the text of chat messages (string content, ``text`` parts, ``refusal`` text and tool-call arguments). Media parts
are not text: ``request_images`` takes a chat request's image parts for the image check."""

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


def request_images(params: Mapping[str, Any]) -> list[str]:
    """The images of a chat request's messages (``image_url`` parts: ``data:`` URIs once inlined, or URLs)."""
    images: list[str] = []
    for message in params.get("messages") or ():
        content = message.get("content") if isinstance(message, Mapping) else None
        for part in content if isinstance(content, list) else ():
            image = part.get("image_url") if isinstance(part, Mapping) and part.get("type") == "image_url" else None
            url = image.get("url") if isinstance(image, Mapping) else image
            if isinstance(url, str) and url:
                images.append(url)
    return images
