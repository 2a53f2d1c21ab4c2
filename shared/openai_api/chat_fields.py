"""The fields of an OpenAI chat completion request beyond ``messages``: each one honoured or refused, never
dropped.

``parse_chat_body`` checks the body's shape and returns a ``ChatInput``; what depends on the model (its
capabilities, its limits) is checked per model by ``shared.openai_api.chat_input``. Honoured:

* sent to the upstream as they are (``options``): ``tools`` (functions), ``tool_choice``, ``parallel_tool_calls``,
  ``response_format`` (``text``, ``json_object``, ``json_schema``), ``stop`` (up to 4), ``top_p``,
  ``frequency_penalty``, ``presence_penalty``, ``logit_bias``, ``logprobs`` / ``top_logprobs``, ``user``, and
  ``n`` when above 1 (``shared.openai_api.chat_input``);
* mapped: ``max_completion_tokens`` / ``max_tokens``, ``temperature``, ``seed``, ``stream``,
  ``stream_options.include_usage``;
* routing (as OpenRouter): ``models`` (fallback models) and ``provider`` (``shared.openai_api.routing``);
* already what Conduit does: ``store: false``, ``modalities: ["text"]``, ``service_tier: "auto"|"default"``, an
  empty ``metadata``.

Every other field, or another value of those, is refused with ``400`` naming it. ``null`` is the same as absent.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from shared.catalog.capabilities import Need
from shared.infra.errors import InvalidInput
from shared.openai_api.routing import ProviderPreferences, parse_preferences

MAX_TOOLS = 128
MAX_STOP = 4
_FUNCTION_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
TRIVIAL = {"store": (False,), "modalities": (["text"],), "service_tier": ("auto", "default"), "metadata": ({},)}
MAPPED = ("model", "messages", "max_tokens", "max_completion_tokens", "temperature", "seed", "stream",
          "stream_options", "models", "provider")  # fmt: skip
FORWARDED = ("tools", "tool_choice", "parallel_tool_calls", "response_format", "stop", "top_p", "frequency_penalty",
             "presence_penalty", "logit_bias", "logprobs", "top_logprobs", "user", "n")  # fmt: skip
HINTS = {"functions": "use tools", "function_call": "use tool_choice"}


@dataclass(slots=True)
class ChatInput:
    """A chat request: the fields Conduit maps, and the OpenAI fields it sends upstream as they are."""

    model: str
    messages: Any  # checked with the model's limits (chat_messages)
    max_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    n: int | None = None
    stream: bool = False
    include_usage: bool = False
    options: dict[str, Any] = field(default_factory=dict)  # checked OpenAI fields (FORWARDED), sent as they are
    fallback_models: tuple[str, ...] = ()  # ``models``: tried in order after ``model``
    providers: ProviderPreferences | None = None  # ``provider``
    max_tokens_param: str = "max_tokens"  # the field the client used, for errors


def parse_chat_body(body: Any) -> ChatInput:
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object", code="invalid_request")
    present = {key: value for key, value in body.items() if value is not None}
    for name, value in present.items():
        if name in MAPPED or name in FORWARDED:
            continue
        if name in TRIVIAL and value in TRIVIAL[name]:
            continue
        hint = f" ({HINTS[name]})" if name in HINTS else ""
        what = f"{name} = {value!r}" if name in TRIVIAL else f"the field {name!r}"
        raise InvalidInput(f"Conduit does not support {what}{hint}", param=name)
    fallbacks = _fallbacks(present.get("models"))
    model = present.get("model") or (fallbacks[0] if fallbacks else None)
    if not isinstance(model, str) or not model:
        raise InvalidInput("model is required (a model id; see GET /v1/models)", param="model")
    completion_tokens = "max_completion_tokens" in present
    stream = _bool(present, "stream") or False
    options = _options(present)
    return ChatInput(
        model=model,
        messages=present.get("messages"),
        max_tokens=_int(present, "max_completion_tokens" if completion_tokens else "max_tokens", 1),
        temperature=_number(present, "temperature", -math.inf, math.inf),  # its range: the model's parameter
        seed=_int(present, "seed", None),
        n=_int(present, "n", 1, 128),
        stream=stream,
        include_usage=_stream_options(present.get("stream_options")),
        options=options,
        fallback_models=tuple(m for m in fallbacks if m != model),
        providers=parse_preferences(present.get("provider")),
        max_tokens_param="max_completion_tokens" if completion_tokens else "max_tokens",
    )


def option_needs(options: dict[str, Any]) -> list[Need]:
    """The capabilities the forwarded fields use."""
    needs = []
    if options.get("tools"):
        needs.append(Need("tools", "tools"))
    if options.get("parallel_tool_calls") is True:
        needs.append(Need("parallel_tool_calls", "parallel_tool_calls"))
    kind = (options.get("response_format") or {}).get("type")
    if kind in ("json_object", "json_schema"):
        needs.append(Need("json_mode" if kind == "json_object" else "json_schema", "response_format"))
    if options.get("logprobs"):
        needs.append(Need("logprobs", "logprobs"))
    return needs


def _options(body: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    tools = body.get("tools")
    if tools is not None and tools != []:
        options["tools"] = _tools(tools)
    names = [tool["function"]["name"] for tool in options.get("tools", [])]
    if "tool_choice" in body:
        choice = _tool_choice(body["tool_choice"], names)
        if names:
            options["tool_choice"] = choice
    if "parallel_tool_calls" in body:
        if not names:
            raise InvalidInput("parallel_tool_calls is only allowed with tools", param="parallel_tool_calls")
        options["parallel_tool_calls"] = _bool(body, "parallel_tool_calls")
    if "response_format" in body:
        response_format = _response_format(body["response_format"])
        if response_format["type"] != "text":
            options["response_format"] = response_format
    if "stop" in body:
        options["stop"] = _stop(body["stop"])
    for name, low, high in (("top_p", 0, 1), ("frequency_penalty", -2, 2), ("presence_penalty", -2, 2)):
        if name in body:
            options[name] = _number(body, name, low, high)
    if "logit_bias" in body:
        options["logit_bias"] = _logit_bias(body["logit_bias"])
    if _bool(body, "logprobs"):
        options["logprobs"] = True
        if "top_logprobs" in body:
            options["top_logprobs"] = _int(body, "top_logprobs", 0, 20)
    elif "top_logprobs" in body:
        raise InvalidInput("top_logprobs needs logprobs: true", param="top_logprobs")
    if "user" in body:
        if not isinstance(body["user"], str) or len(body["user"]) > 256:
            raise InvalidInput("user must be a string of at most 256 characters", param="user")
        options["user"] = body["user"]
    return options


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list) or len(tools) > MAX_TOOLS:
        raise InvalidInput(f"tools must be a list of at most {MAX_TOOLS} tools", param="tools")
    out: list[dict[str, Any]] = []
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise InvalidInput('only function tools are supported: {"type": "function", "function": {…}}', param=where)
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidInput("a tool needs function.name", param=f"{where}.function")
        if not _FUNCTION_NAME.fullmatch(function["name"]):
            raise InvalidInput("function names are 1-64 letters, digits, _ or -", param=f"{where}.function.name")
        unknown = sorted(set(function) - {"name", "description", "parameters", "strict"})
        if unknown:
            raise InvalidInput(f"unsupported function field {unknown[0]!r}", param=f"{where}.function.{unknown[0]}")
        if "parameters" in function and not isinstance(function["parameters"], dict):
            raise InvalidInput("function.parameters must be a JSON schema object", param=f"{where}.function.parameters")
        if "description" in function and not isinstance(function["description"], str):
            raise InvalidInput("function.description must be a string", param=f"{where}.function.description")
        if "strict" in function and not isinstance(function["strict"], bool | None):
            raise InvalidInput("function.strict must be true or false", param=f"{where}.function.strict")
        out.append({"type": "function", "function": {k: v for k, v in function.items() if v is not None}})
    if len({tool["function"]["name"] for tool in out}) != len(out):
        raise InvalidInput("tool names must be unique", param="tools")
    return out


def _tool_choice(choice: Any, names: list[str]) -> Any:
    if choice in ("none", "auto", "required"):
        if choice != "none" and not names:
            raise InvalidInput(f"tool_choice {choice!r} needs tools", param="tool_choice")
        return choice
    function = choice.get("function") if isinstance(choice, dict) and choice.get("type") == "function" else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        raise InvalidInput('tool_choice is "none", "auto", "required" or {"type": "function", "function": {"name"}}',
                           param="tool_choice")  # fmt: skip
    if name not in names:
        raise InvalidInput(f"tool_choice names {name!r}, which is not one of the tools", param="tool_choice")
    return {"type": "function", "function": {"name": name}}


def _response_format(value: Any) -> dict[str, Any]:
    kind = value.get("type") if isinstance(value, dict) else None
    if kind in ("text", "json_object") and set(value) == {"type"}:
        return {"type": kind}
    if kind == "json_schema":
        schema = value.get("json_schema")
        if not isinstance(schema, dict) or not isinstance(schema.get("name"), str):
            raise InvalidInput("json_schema needs a name and a schema", param="response_format.json_schema")
        unknown = sorted(set(schema) - {"name", "schema", "strict", "description"})
        if unknown:
            raise InvalidInput(f"unsupported field {unknown[0]!r}", param=f"response_format.json_schema.{unknown[0]}")
        if not isinstance(schema.get("schema", {}), dict):
            raise InvalidInput("the schema must be a JSON object", param="response_format.json_schema.schema")
        return {"type": "json_schema", "json_schema": {k: v for k, v in schema.items() if v is not None}}
    raise InvalidInput('response_format is {"type": "text"}, {"type": "json_object"} or {"type": "json_schema", '
                       '"json_schema": {…}}', param="response_format")  # fmt: skip


def _stop(stop: Any) -> str | list[str]:
    sequences = [stop] if isinstance(stop, str) else stop
    if not isinstance(sequences, list) or not 0 < len(sequences) <= MAX_STOP:
        raise InvalidInput(f"stop must be a string or a list of 1 to {MAX_STOP} strings", param="stop")
    if not all(isinstance(s, str) and s for s in sequences):
        raise InvalidInput("stop sequences must be non-empty strings", param="stop")
    return stop


def _logit_bias(bias: Any) -> dict[str, int]:
    if not isinstance(bias, dict) or len(bias) > 300:
        raise InvalidInput("logit_bias maps at most 300 token ids to a bias", param="logit_bias")
    for token, value in bias.items():
        if not str(token).isdigit() or isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput("logit_bias maps token ids to numbers", param=f"logit_bias.{token}")
        if not -100 <= value <= 100:
            raise InvalidInput("a bias is between -100 and 100", param=f"logit_bias.{token}")
    return bias


def _fallbacks(models: Any) -> list[str]:
    if models is None:
        return []
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models) or len(models) > 8:
        raise InvalidInput("models must be a list of at most 8 model ids", param="models")
    return list(dict.fromkeys(models))


def _stream_options(options: Any) -> bool:
    if options is None:
        return False
    if not isinstance(options, dict):
        raise InvalidInput("stream_options must be an object", param="stream_options")
    for key, value in options.items():
        if key == "include_usage" and isinstance(value, bool | None):
            continue
        if key == "include_obfuscation" and value in (False, None):
            continue  # no obfuscation padding is what Conduit sends
        raise InvalidInput(f"Conduit does not support stream_options.{key} = {value!r}", param=f"stream_options.{key}")
    return bool(options.get("include_usage"))


def _bool(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise InvalidInput(f"{name} must be true or false", param=name)
    return value


def _int(body: dict[str, Any], name: str, low: int | None, high: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name} must be an integer", param=name)
    if low is not None and value < low:
        raise InvalidInput(f"{name} must be >= {low}", param=name)
    if high is not None and value > high:
        raise InvalidInput(f"{name} must be <= {high}", param=name)
    return value


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{name} must be a number", param=name)
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low:g} and {high:g}", param=name)  # never for ±inf
    return value
