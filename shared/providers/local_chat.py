"""The ``local`` provider's chat answers: deterministic, and honouring every field of an OpenAI chat request that
a catalog model may offer, so that tests (and offline development) can tell each field arrived.

* ``n``: that many choices; choice ``i`` is drawn with seed + i.
* ``seed``: the same request and seed give the same answer (``shared.providers.local.reply_text``).
* ``stop``: the reply ends just before the first stop sequence it contains (``finish_reason`` ``"stop"``).
* ``tools``: when the last message is the user's, the tools it names are called (a tool is named by its name, or
  by a part of its name of four letters or more, e.g. ``get_weather`` by "weather"). ``tool_choice``
  ``"required"`` calls the first tool when none is named, a named ``tool_choice`` that tool, ``"none"`` none;
  ``parallel_tool_calls: false`` calls one at most. Arguments match the function's parameter schema, their strings
  taken from the user's words (``shared.providers.schema_instance``); ``finish_reason`` is ``"tool_calls"``.
  When the last messages are tool results, the reply answers from them: ``Tool get_weather returned: …``.
* ``response_format``: ``json_object`` answers ``{"reply": "<text>"}``; ``json_schema`` an object matching the
  schema (every property, so every required one, of the declared type).
* ``logprobs`` / ``top_logprobs``: a log probability per token of the reply, with that many alternatives.
* ``top_p``, the penalties and ``logit_bias`` change the reply's closing words.
* image parts (vision models): the reply starts by describing each image of the last user message, its size,
  format and dominant colours (``shared.providers.local_media.describe``).

Tokens are words and punctuation (``count_tokens``); the prompt counts each message's text, tool calls and tool
schemas. Streams send the reply a word per delta and tool calls as OpenAI streams them (the call's id, type and
name with empty arguments, then the arguments in pieces).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from shared.catalog.pricing import Usage
from shared.providers.base import Completed, Output
from shared.providers.local import count_tokens, reply_text
from shared.providers.schema_instance import schema_instance

_PIECE = re.compile(r"\s*(?:\w+|[^\w\s])")  # one token with the spaces before it: pieces join back to the text
_WORD = re.compile(r"[A-Za-z][\w-]*")
_ALTERNATIVES = ("the", "a", "and", "of", "to", "local", "model", "reply", "signal", "river")
SAMPLING = ("top_p", "frequency_penalty", "presence_penalty", "logit_bias")  # temperature: reply_text's own


def _rng(*parts: Any) -> random.Random:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def message_text(message: dict[str, Any]) -> str:
    """A message's text: its content (string or text parts), and its tool calls' names and arguments."""
    content = message.get("content")
    if isinstance(content, list):
        text = " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    else:
        text = content if isinstance(content, str) else ""
    calls = message.get("tool_calls") or []
    parts = [f"{c['function']['name']} {c['function']['arguments']}" for c in calls if isinstance(c, dict)]
    return " ".join([text, *parts]) if parts else text


def prompt_tokens(params: dict[str, Any]) -> int:
    """The prompt's tokens as the local provider counts them (also the estimate for upstreams that report none)."""
    total = sum(count_tokens(message_text(m)) + 4 for m in params.get("messages", [])) + 2
    if params.get("tools"):
        total += count_tokens(json.dumps(params["tools"]))
    return total


@dataclass(slots=True)
class LocalChoice:
    text: str | None
    tool_calls: list[dict[str, Any]] | None
    finish_reason: str
    tokens: list[str]  # the text's tokens (pieces that join back to it), or the tool calls' for counting
    logprobs: list[dict[str, Any]] | None


def answer(params: dict[str, Any], seed: int) -> tuple[list[LocalChoice], Usage]:
    """The choices of a chat request and its usage."""
    choices = [_choice(params, (seed + index) % 2**32) for index in range(int(params.get("n") or 1))]
    output_tokens = sum(len(choice.tokens) for choice in choices)
    return choices, Usage(input_tokens=prompt_tokens(params), output_tokens=output_tokens)


def complete(params: dict[str, Any], seed: int) -> Completed:
    choices, usage = answer(params, seed)
    outputs = [
        Output(type="text", text=choice.text, content_type="text/plain", finish_reason=choice.finish_reason,
               tool_calls=choice.tool_calls,
               logprobs={"content": choice.logprobs, "refusal": None} if choice.logprobs is not None else None)
        for choice in choices
    ]  # fmt: skip
    return Completed(outputs=outputs, usage=usage)


def _choice(params: dict[str, Any], seed: int) -> LocalChoice:
    messages: list[dict[str, Any]] = params["messages"]
    max_tokens = int(params.get("max_tokens", 256))
    calls = _tool_calls(params, seed)
    if calls:
        tokens = _PIECE.findall(" ".join(f"{c['function']['name']} {c['function']['arguments']}" for c in calls))
        return LocalChoice(None, calls, "tool_calls", tokens, None)
    text, finish = _text(params, messages, max_tokens, seed)
    text, finish = _stopped(text, finish, params.get("stop"))
    tokens = _PIECE.findall(text)
    logprobs = _logprobs(tokens, seed, int(params.get("top_logprobs") or 0)) if params.get("logprobs") else None
    return LocalChoice(text, None, finish, tokens, logprobs)


def _text(params: dict[str, Any], messages: list[dict[str, Any]], max_tokens: int, seed: int) -> tuple[str, str]:
    """The reply before stop sequences, and whether it ran out of tokens."""
    projected = [{"role": m["role"], "content": message_text(m)} for m in messages]
    results = _tool_results(messages)
    if results:
        projected.append({"role": "user", "content": results})
    sampling = [params[name] for name in SAMPLING if params.get(name) is not None]
    text, _, produced = reply_text(projected, max_tokens, seed + _offset(sampling), params.get("temperature"))
    if results:
        text = _cut(results, max_tokens)
        produced = count_tokens(text)
    described = _image_descriptions(messages)
    if described:
        text = _cut(f"{described} {text}", max_tokens)
        produced = count_tokens(text)
    kind = (params.get("response_format") or {}).get("type")
    if kind in ("json_object", "json_schema"):
        if kind == "json_object":
            value: Any = {"reply": text}
        else:
            schema = params["response_format"].get("json_schema", {}).get("schema")
            value = schema_instance(schema, _words(messages), _rng("json", seed))
        text = _cut(json.dumps(value), max_tokens)
        produced = count_tokens(text)
    return text, "length" if produced >= max_tokens else "stop"


def _image_descriptions(messages: list[dict[str, Any]]) -> str:
    """What the images of the last user message show (``Image 1: a 64x48 PNG image; dominant colours: …``)."""
    from shared.providers.local_media import data_uri_bytes, describe

    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    content = last_user.get("content") if last_user else None
    if not isinstance(content, list):
        return ""
    urls = [p["image_url"]["url"] for p in content if isinstance(p, dict) and p.get("type") == "image_url"]
    described = []
    for number, url in enumerate(urls, start=1):
        data = data_uri_bytes(url)
        described.append(f"Image {number}: {describe(data) if data is not None else 'not inlined'}.")
    return " ".join(described)


def _offset(sampling: list[Any]) -> int:
    """How the sampling fields move the seed (none: not at all, so a request without them keeps its reply)."""
    if not sampling:
        return 0
    return int.from_bytes(hashlib.sha256(json.dumps(sampling, sort_keys=True).encode()).digest()[:4], "big")


def _cut(text: str, max_tokens: int) -> str:
    return "".join(_PIECE.findall(text)[:max_tokens]).strip() if count_tokens(text) > max_tokens else text


def _stopped(text: str, finish: str, stop: Any) -> tuple[str, str]:
    sequences = [stop] if isinstance(stop, str) else list(stop or [])
    cuts = [text.find(sequence) for sequence in sequences if sequence and sequence in text]
    return (text[: min(cuts)].rstrip(), "stop") if cuts else (text, finish)


def _tool_results(messages: list[dict[str, Any]]) -> str:
    """The trailing tool results, as one text: ``Tool <name> returned: <content>`` each."""
    names = {
        call.get("id"): call.get("function", {}).get("name")
        for message in messages
        for call in message.get("tool_calls") or []
        if isinstance(call, dict)
    }
    results = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        name = names.get(message.get("tool_call_id")) or "tool"
        results.append(f"Tool {name} returned: {message_text(message)}")
    return " ".join(reversed(results))


def _words(messages: list[dict[str, Any]]) -> list[str]:
    """The last user message's words, capitalised ones (names) first, last ones first."""
    last = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
    words = [w for w in _WORD.findall(last) if len(w) > 2][::-1]
    return [w for w in words if w[0].isupper()] + [w for w in words if not w[0].isupper()]


def _tool_calls(params: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    tools = [t["function"] for t in params.get("tools") or [] if t.get("type") == "function"]
    messages = params["messages"]
    if not tools or messages[-1].get("role") != "user":
        return []
    choice = params.get("tool_choice", "auto")
    if choice == "none":
        return []
    if isinstance(choice, dict):
        chosen = [t for t in tools if t["name"] == choice["function"]["name"]]
    else:
        last = message_text(messages[-1]).lower()
        chosen = [t for t in tools if _named(t["name"], last)]
        if not chosen and choice == "required":
            chosen = tools[:1]
    if params.get("parallel_tool_calls") is False:
        chosen = chosen[:1]
    words, rng = _words(messages), _rng("tools", seed)
    return [
        {
            "id": f"call_{rng.getrandbits(96):024x}",
            "type": "function",
            "function": {"name": tool["name"],
                         "arguments": json.dumps(schema_instance(tool.get("parameters"), words, rng))},
        }
        for tool in chosen
    ]  # fmt: skip


def _named(name: str, text: str) -> bool:
    words = set(re.findall(r"\w+", text))
    parts = [part for part in re.split(r"[_\-]|(?<=[a-z])(?=[A-Z])", name) if len(part) >= 4]
    return name.lower() in text or any(part.lower() in words for part in parts)


def _logprobs(tokens: list[str], seed: int, top: int) -> list[dict[str, Any]]:
    entries = []
    for position, token in enumerate(tokens):
        rng = _rng("logprob", seed, position, token)
        logprob = -round(rng.random() ** 2 * 3, 6)
        alternatives = [{"token": token, "logprob": logprob, "bytes": list(token.encode())}]
        others = [word for word in _ALTERNATIVES if f" {word}" != token]
        for rank, word in enumerate(rng.sample(others, min(top, len(others)))[: max(0, top - 1)]):
            other = f" {word}"
            entry = {"token": other, "logprob": round(logprob - 1 - rank, 6), "bytes": list(other.encode())}
            alternatives.append(entry)
        entries.append({"token": token, "logprob": logprob, "bytes": list(token.encode()),
                        "top_logprobs": alternatives[:top]})  # fmt: skip
    return entries


def stream_deltas(choice: LocalChoice, index: int) -> Iterator[dict[str, Any]]:
    """One choice as OpenAI streams it, a word (or a piece of a tool call's arguments) per delta: dicts of
    ``ChatDelta`` fields."""
    if choice.tool_calls:
        for number, call in enumerate(choice.tool_calls):
            head = {"index": number, "id": call["id"], "type": "function",
                    "function": {"name": call["function"]["name"], "arguments": ""}}  # fmt: skip
            yield {"index": index, "tool_calls": [head]}
            for piece in _PIECE.findall(call["function"]["arguments"]):
                yield {"index": index, "tool_calls": [{"index": number, "function": {"arguments": piece}}]}
    else:
        position = 0
        for word in re.findall(r"\s*\S+", choice.text or ""):
            count = len(_PIECE.findall(word))
            delta: dict[str, Any] = {"index": index, "text": word}
            if choice.logprobs is not None:
                delta["logprobs"] = {"content": choice.logprobs[position : position + count], "refusal": None}
            position += count
            yield delta
    yield {"index": index, "finish_reason": choice.finish_reason}
