"""OpenAI-compatible upstreams: OpenAI, Together, Groq, Fireworks, DeepInfra, OpenRouter, vLLM, Ollama, …

* text models: ``POST {base}/chat/completions`` with every OpenAI field the request validated (tools,
  response_format, stop, n, logprobs, …: ``shared.openai_api.chat_fields``); each choice with its text, tool calls
  and logprobs; usage from ``usage.prompt_tokens`` / ``completion_tokens`` and its details (cached tokens);
* image models: ``POST {base}/images/generations``; each item of ``data`` carries ``b64_json`` (decoded
  here) or ``url`` (downloaded into our storage by the task runner).

Both answer synchronously, so ``start`` returns a ``Completed``. Which provider names speak this protocol,
their base URLs and key variables are declared in the catalog's ``[providers.*]`` tables.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from shared.catalog import Route
from shared.catalog.pricing import Usage
from shared.providers.base import Completed, GenerationRequest, InputFile, Output, PermanentError, Running
from shared.providers.embeddings import Embeddings, build_embedding_request, parse_embedding_response
from shared.providers.http import HttpProvider, malformed
from shared.providers.local import count_tokens
from shared.providers.local_chat import prompt_tokens
from shared.providers.params import upstream_input

# -- pure request builders and response parsers ---------------------------------------------------------


def build_chat_request(route: Route, params: dict[str, Any]) -> dict[str, Any]:
    body = {"model": route.upstream_model, **upstream_input(route, params)}
    body["stream"] = False
    return body


def parse_chat_response(provider: str, data: Any, params: dict[str, Any]) -> Completed:
    """Every choice (text, tool calls, logprobs) in order of ``index``, and the usage with its details."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not all(isinstance(c, dict) for c in choices):
        raise malformed(provider, "choices")
    outputs = [_chat_output(provider, choice) for choice in sorted(choices, key=lambda c: c.get("index") or 0)]
    produced = " ".join(
        " ".join([o.text or "", *(f"{c['function']['name']} {c['function']['arguments']}" for c in o.tool_calls or [])])
        for o in outputs
    )
    usage, details = parse_usage(data.get("usage"), params, produced)
    return Completed(outputs=outputs, usage=usage, usage_details=details)


def _chat_output(provider: str, choice: dict[str, Any]) -> Output:
    message: dict[str, Any] = choice["message"] if isinstance(choice.get("message"), dict) else {}
    content, calls = message.get("content"), message.get("tool_calls")
    if not content and not calls and (choice.get("finish_reason") == "content_filter" or message.get("refusal")):
        raise PermanentError(
            f"{provider} refused the request under its content policy", code="content_policy_violation"
        )
    if calls is not None and not _tool_calls_well_formed(calls):
        raise malformed(provider, "choices[].message.tool_calls")
    if not isinstance(content, str) and not (content is None and calls):
        raise malformed(provider, "choices[].message.content")
    finish = choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None
    logprobs = choice.get("logprobs") if isinstance(choice.get("logprobs"), dict) else None
    return Output(type="text", text=content, content_type="text/plain", finish_reason=finish,
                  tool_calls=calls or None, logprobs=logprobs)  # fmt: skip


def _tool_calls_well_formed(calls: Any) -> bool:
    return isinstance(calls, list) and all(
        isinstance(call, dict)
        and isinstance(call.get("id"), str)
        and isinstance(call.get("function"), dict)
        and isinstance(call["function"].get("name"), str)
        and isinstance(call["function"].get("arguments"), str)
        for call in calls
    )


DETAILS = ("prompt_tokens_details", "completion_tokens_details")


def parse_usage(raw: Any, params: dict[str, Any], produced: str) -> tuple[Usage, dict[str, dict[str, int]]]:
    """OpenAI's ``usage``: the tokens (estimated like the local provider counts them when the upstream reported
    none: some self-hosted servers), the cached and reasoning tokens, and the details to pass through."""
    usage: dict[str, Any] = raw if isinstance(raw, dict) else {}
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not (isinstance(prompt, int) and isinstance(completion, int)):
        prompt, completion = prompt_tokens(params), count_tokens(produced)
    details = {
        name: {key: value for key, value in usage[name].items() if isinstance(value, int) and value >= 0}
        for name in DETAILS
        if isinstance(usage.get(name), dict)
    }
    cached = details.get("prompt_tokens_details", {}).get("cached_tokens", 0)
    reasoning = details.get("completion_tokens_details", {}).get("reasoning_tokens", 0)
    prompt, completion = max(0, prompt), max(0, completion)
    return Usage(input_tokens=prompt, output_tokens=completion, cached_input_tokens=min(cached, prompt),
                 reasoning_tokens=min(reasoning, completion)), details  # fmt: skip


def build_image_request(route: Route, params: dict[str, Any]) -> dict[str, Any]:
    body = {
        "model": route.upstream_model,
        "response_format": "b64_json",
        **upstream_input(route, params),
    }
    return {key: value for key, value in body.items() if value is not None}


def build_image_edit_request(
    route: Route, params: dict[str, Any]
) -> tuple[dict[str, str], dict[str, tuple[str, bytes, str]]]:
    """The form fields and files of ``POST {base}/images/edits`` (OpenAI's multipart image edit): each input
    file as a file part under its upstream name, every other value as a text field. No ``response_format``:
    gpt-image-1 refuses it (and always answers ``b64_json``); a route for another model may set it in ``extra``."""
    fields: dict[str, str] = {"model": route.upstream_model}
    files: dict[str, tuple[str, bytes, str]] = {}
    for name, value in params.items():
        mapping = route.mapping(name)
        if mapping is None or mapping.is_fixed:
            continue
        target = mapping.to or name
        if isinstance(value, InputFile):
            extension = value.key.rsplit(".", 1)[-1]
            files[target] = (f"{name}.{extension}", value.data, value.content_type)
        else:
            fields[target] = str(mapping.value(value, params))
    fields.update({key: str(value) for key, value in (route.options.get("extra") or {}).items()})
    return fields, files


def parse_image_response(provider: str, data: Any) -> Completed:
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise malformed(provider, "data")
    outputs: list[Output] = []
    for item in items:
        if not isinstance(item, dict):
            raise malformed(provider, "data[]")
        if isinstance(item.get("b64_json"), str):
            try:
                raw = base64.b64decode(item["b64_json"], validate=True)
            except (binascii.Error, ValueError):
                raise malformed(provider, "valid base64 in data[].b64_json") from None
            outputs.append(Output(type="image", data=raw))
        elif isinstance(item.get("url"), str):
            outputs.append(Output(type="image", url=item["url"]))
        else:
            raise malformed(provider, "data[].b64_json or data[].url")
    return Completed(outputs=outputs, usage=Usage(images=len(outputs)))


# -- I/O ------------------------------------------------------------------------------------------------


class OpenAICompatProvider(HttpProvider):
    async def start(self, request: GenerationRequest) -> Completed:
        kind = request.model.kind
        if kind == "text":
            data = await self._call("POST", "/chat/completions", build_chat_request(request.route, request.params))
            return parse_chat_response(self.name, data, request.params)
        if kind == "image" and request.route.options.get("inputs") == "multipart":
            fields, files = build_image_edit_request(request.route, request.params)
            data = await self._call_multipart("/images/edits", fields, files)
            return parse_image_response(self.name, data)
        if kind == "image":
            data = await self._call("POST", "/images/generations", build_image_request(request.route, request.params))
            return parse_image_response(self.name, data)
        raise PermanentError(f"{self.name} cannot generate {kind} through this API", code="unsupported_model")

    async def poll(self, request: GenerationRequest, upstream_id: str) -> Completed | Running:
        raise PermanentError(f"{self.name} has no upstream jobs to poll", code="unsupported_operation")

    async def cancel(self, request: GenerationRequest, upstream_id: str) -> None:
        return None

    async def embed(self, request: GenerationRequest) -> Embeddings:
        """``POST {base}/embeddings`` (``shared.providers.embeddings``)."""
        body = build_embedding_request(request.route.upstream_model, request.params)
        data = await self._call("POST", "/embeddings", body)
        return parse_embedding_response(self.name, data, request.params)
