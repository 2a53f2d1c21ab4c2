"""The OpenAI-compatible simulator's chat answers, in OpenAI's exact wire format (its own code: it does not share
the local provider's, so a test through it checks what Conduit sends and parses, not the local provider).

* the reply: ``Simulated reply to: <last user text>``; after tool results ``Simulated answer from tools: <results>``;
* ``tools``: when the last message is the user's, the tools it names are called (by name, or by a part of the name
  of four letters or more), or the first with ``tool_choice: "required"``, or the named one; one call unless
  ``parallel_tool_calls`` is left out or true. Arguments: every property of the schema, strings from the user's
  capitalised words (``{"city": "Paris"}``);
* ``response_format``: ``json_object`` -> ``{"reply": …}``; ``json_schema`` -> every property, typed;
* ``stop``: the reply is cut before the first stop sequence; ``n``: choice ``i`` ends with `` #i`` (i > 0);
* ``logprobs``: one entry per word, ``-0.1`` per position, ``top_logprobs`` alternatives;
* usage: one token per word; ``prompt_tokens_details.cached_tokens`` and ``completion_tokens_details`` as set on
  the simulator.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any


def text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content if isinstance(content, str) else ""


def _named(name: str, text: str) -> bool:
    words = set(re.findall(r"\w+", text.lower()))
    return name.lower() in text.lower() or any(p.lower() in words for p in re.split(r"[_\-]", name) if len(p) >= 4)


def _value(schema: dict[str, Any], word: str) -> Any:
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if kind == "object":
        return {name: _value(sub, word) for name, sub in (schema.get("properties") or {}).items()}
    return {"integer": 1, "number": 1.5, "boolean": True, "array": [], "null": None}.get(kind, word)


def _tool_calls(body: dict[str, Any], last: dict[str, Any]) -> list[dict[str, Any]]:
    tools = [t["function"] for t in body.get("tools") or [] if t.get("type") == "function"]
    choice = body.get("tool_choice", "auto")
    if not tools or last.get("role") != "user" or choice == "none":
        return []
    text = text_of(last)
    if isinstance(choice, dict):
        chosen = [t for t in tools if t["name"] == choice["function"]["name"]]
    else:
        chosen = [t for t in tools if _named(t["name"], text)] or (tools[:1] if choice == "required" else [])
    if body.get("parallel_tool_calls") is False:
        chosen = chosen[:1]
    word = ([w for w in re.findall(r"[A-Za-z]+", text) if w[0].isupper()] or ["x"])[-1]
    return [
        {"id": f"call_sim_{n}", "type": "function",
         "function": {"name": tool["name"], "arguments": json.dumps(_value(tool.get("parameters") or {}, word))}}
        for n, tool in enumerate(chosen)
    ]  # fmt: skip


def _logprobs(text: str, top: int) -> dict[str, Any]:
    entries = []
    for position, token in enumerate(re.findall(r"\s*\S+", text)):
        logprob = round(-0.1 * (position + 1), 4)
        alternatives = [{"token": token, "logprob": logprob, "bytes": list(token.encode())}]
        alternatives += [{"token": f" alt{k}", "logprob": logprob - k, "bytes": list(f" alt{k}".encode())}
                         for k in range(1, top)]  # fmt: skip
        entries.append({"token": token, "logprob": logprob, "bytes": list(token.encode()),
                        "top_logprobs": alternatives[:top]})  # fmt: skip
    return {"content": entries, "refusal": None}


def choices(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The answer's choices (OpenAI's ``choices[]`` of a ``chat.completion``)."""
    messages = body["messages"]
    last = messages[-1]
    user = next((text_of(m) for m in reversed(messages) if m["role"] == "user"), "")
    out = []
    for index in range(int(body.get("n") or 1)):
        calls = _tool_calls(body, last)
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
        finish = "tool_calls"
        logprobs = None
        if calls:
            message["tool_calls"] = calls
        else:
            if last.get("role") == "tool":
                reply = "Simulated answer from tools: " + "; ".join(text_of(m) for m in messages if m["role"] == "tool")
            else:
                reply = f"Simulated reply to: {user}" + (f" #{index}" if index else "")
            kind = (body.get("response_format") or {}).get("type")
            if kind == "json_object":
                reply = json.dumps({"reply": reply})
            elif kind == "json_schema":
                reply = json.dumps(_value(body["response_format"]["json_schema"].get("schema") or {}, "simulated"))
            finish = "stop"
            words = reply.split(" ")
            max_tokens = int(body.get("max_tokens") or 4096)
            if len(words) > max_tokens:
                reply, finish = " ".join(words[:max_tokens]), "length"
            stops = [body["stop"]] if isinstance(body.get("stop"), str) else body.get("stop") or []
            cuts = [reply.find(s) for s in stops if s in reply]
            if cuts:
                reply, finish = reply[: min(cuts)], "stop"
            message["content"] = reply
            if body.get("logprobs"):
                logprobs = _logprobs(reply, int(body.get("top_logprobs") or 0))
        out.append({"index": index, "message": message, "logprobs": logprobs, "finish_reason": finish})
    return out


def completion_tokens(answer: list[dict[str, Any]]) -> int:
    total = 0
    for choice in answer:
        message = choice["message"]
        total += len((message["content"] or "").split())
        total += sum(len(c["function"]["arguments"].split()) + 1 for c in message.get("tool_calls") or [])
    return total


def prompt_tokens(body: dict[str, Any]) -> int:
    return sum(len(text_of(m).split()) + 4 for m in body["messages"])


def chunk_choices(answer: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], str | None, Any]]:
    """(delta, finish_reason, logprobs) per chunk, as OpenAI streams them: for each choice, its first delta with the
    role (and, for a tool call, the call's id, type and name with empty arguments), then one word of text or a
    piece of the arguments per chunk, then an empty delta with the finish reason."""
    for choice in answer:
        index, message = choice["index"], choice["message"]
        calls = message.get("tool_calls")
        if calls:
            for n, call in enumerate(calls):
                head = {"index": n, "id": call["id"], "type": "function",
                        "function": {"name": call["function"]["name"], "arguments": ""}}  # fmt: skip
                first = {"role": "assistant", "content": None, "tool_calls": [head], "refusal": None} if n == 0 else {
                    "tool_calls": [head]}  # fmt: skip
                yield {**first, "_index": index}, None, None
                arguments = call["function"]["arguments"]
                for start in range(0, len(arguments), 4):
                    piece = {"index": n, "function": {"arguments": arguments[start : start + 4]}}
                    yield {"tool_calls": [piece], "_index": index}, None, None
        else:
            yield {"role": "assistant", "content": "", "refusal": None, "_index": index}, None, None
            entries = (choice["logprobs"] or {}).get("content")
            for position, word in enumerate(re.findall(r"\s*\S+", message["content"] or "")):
                logprobs = {"content": [entries[position]], "refusal": None} if entries else None
                yield {"content": word, "_index": index, "_word": position}, None, logprobs
        yield {"_index": index}, choice["finish_reason"], None
