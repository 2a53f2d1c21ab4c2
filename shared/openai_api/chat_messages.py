"""OpenAI chat messages, checked and put in the form upstreams are sent.

* roles ``system``, ``developer`` (sent as ``system``: most upstreams do not know it), ``user``, ``assistant``,
  ``tool``; ``name`` is kept;
* content: a string, or parts: ``text`` parts (joined into one string when the message has no image) and
  ``image_url`` parts (``{"url": "https://…", "data:image/…;base64,…" or an upload id "upl_…", "detail":
  "auto"|"low"|"high"}``), which need the model's ``vision`` (the API inlines each image as a checked data: URI:
  ``shared.media.chat_images``); any other part (audio, files) is refused;
* an assistant message may carry ``tool_calls`` (``{"id", "type": "function", "function": {"name",
  "arguments"}}``) and then no content; a ``tool`` message answers one with ``tool_call_id``. Both need the
  model's ``tools``.

A field left ``null`` (or an empty list), as clients echoing a previous answer send ``refusal``, ``audio`` or
``annotations``, is the same as a field left out; any other field is refused with ``400`` naming it. The model's
``messages`` parameter bounds the number of messages and their text (``max_items``, ``max_length``).
"""

from __future__ import annotations

from typing import Any

from shared.catalog.capabilities import Need
from shared.catalog.params import Parameter
from shared.infra.errors import InvalidInput

ROLES = ("system", "developer", "user", "assistant", "tool")
ROLE_ALIASES = {"developer": "system"}
KNOWN_FIELDS = frozenset({"role", "content", "name", "tool_calls", "tool_call_id"})
IMAGE_DETAILS = ("auto", "low", "high")


def normalise_messages(messages: Any, limits: Parameter | None) -> tuple[list[dict[str, Any]], list[Need]]:
    """The messages as upstreams are sent them, and the capabilities they use (``InvalidInput`` naming the part)."""
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("messages must be a non-empty list of messages", param="messages")
    if limits is not None and limits.max_items is not None and len(messages) > limits.max_items:
        raise InvalidInput(f"messages may hold at most {limits.max_items} messages", param="messages")
    out: list[dict[str, Any]] = []
    needs: list[Need] = []
    total = 0
    for index, message in enumerate(messages):
        normalised, used, length = _message(message, f"messages[{index}]")
        out.append(normalised)
        needs.extend(used)
        total += length
    if limits is not None and limits.max_length is not None and total > limits.max_length:
        raise InvalidInput(f"messages may hold at most {limits.max_length} characters in all", param="messages")
    return out, needs


def _message(message: Any, where: str) -> tuple[dict[str, Any], list[Need], int]:
    if not isinstance(message, dict):
        raise InvalidInput("each message must be an object with role and content", param=where)
    present = {key: value for key, value in message.items() if value is not None and value != []}
    unknown = sorted(set(present) - KNOWN_FIELDS)
    if unknown:
        raise InvalidInput(f"unsupported message field {unknown[0]!r}", param=f"{where}.{unknown[0]}")
    role = present.get("role")
    if role not in ROLES:
        raise InvalidInput(f"role must be one of: {', '.join(ROLES)}", param=f"{where}.role")
    out: dict[str, Any] = {"role": ROLE_ALIASES.get(role, role)}
    needs: list[Need] = []
    content, length = _content(present.get("content"), role, f"{where}.content", needs)
    calls = present.get("tool_calls")
    if calls is not None:
        if role != "assistant":
            raise InvalidInput("only assistant messages carry tool_calls", param=f"{where}.tool_calls")
        out["tool_calls"] = _tool_calls(calls, f"{where}.tool_calls")
        needs.append(Need("tools", f"{where}.tool_calls"))
        length += sum(len(c["function"]["arguments"]) for c in out["tool_calls"])
    if content is None and calls is None:
        if role != "assistant":
            raise InvalidInput("content must be a string or a list of parts", param=f"{where}.content")
        content = ""
    out["content"] = content
    if role == "tool":
        call_id = present.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidInput(
                "a tool message answers a tool call: give its tool_call_id", param=f"{where}.tool_call_id"
            )
        out["tool_call_id"] = call_id
        needs.append(Need("tools", where))
    elif "tool_call_id" in present:
        raise InvalidInput("only tool messages carry tool_call_id", param=f"{where}.tool_call_id")
    if "name" in present:
        if not isinstance(present["name"], str):
            raise InvalidInput("name must be a string", param=f"{where}.name")
        out["name"] = present["name"]
    return out, needs, length


def _content(content: Any, role: str, where: str, needs: list[Need]) -> tuple[Any, int]:
    """The content as sent upstream (None when absent) and its length in characters."""
    if content is None or isinstance(content, str):
        return content, len(content or "")
    if not isinstance(content, list):
        raise InvalidInput("content must be a string or a list of parts", param=where)
    texts: list[str] = []
    images = False
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        part_where = f"{where}[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "image_url" and role == "user":
            parts.append({"type": "image_url", "image_url": _image(part.get("image_url"), part_where)})
            needs.append(Need("vision", part_where))
            images = True
        else:
            what = "text and (in user messages) image_url parts" if role == "user" else "text parts"
            raise InvalidInput(f"content may only hold {what}", param=part_where)
    length = sum(len(text) for text in texts)
    return (parts if images else "\n".join(texts)), length


def _image(image: Any, where: str) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, dict) else None
    if not isinstance(url, str) or not url.startswith(("https://", "http://", "data:image/", "upl_")):
        raise InvalidInput(
            "image_url.url must be an http(s) URL, a data:image/… URL or an upload id", param=f"{where}.image_url"
        )
    out = {"url": url}
    detail = image.get("detail")
    if detail is not None:
        if detail not in IMAGE_DETAILS:
            raise InvalidInput(f"detail must be one of: {', '.join(IMAGE_DETAILS)}", param=f"{where}.image_url.detail")
        out["detail"] = detail
    return out


def _tool_calls(calls: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(calls, list):
        raise InvalidInput("tool_calls must be a list", param=where)
    out = []
    for index, call in enumerate(calls):
        call_where = f"{where}[{index}]"
        function = call.get("function") if isinstance(call, dict) else None
        if (
            not isinstance(call, dict)
            or call.get("type", "function") != "function"
            or not isinstance(call.get("id"), str)
            or not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
            or not isinstance(function.get("arguments"), str)
        ):
            raise InvalidInput(
                'a tool call is {"id", "type": "function", "function": {"name", "arguments"}} (arguments a JSON '
                "string)",
                param=call_where,
            )
        out.append({"id": call["id"], "type": "function",
                    "function": {"name": function["name"], "arguments": function["arguments"]}})  # fmt: skip
    return out
