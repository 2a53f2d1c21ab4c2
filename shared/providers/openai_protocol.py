"""OpenAI-compatible upstreams: OpenAI, Together, Groq, Fireworks, DeepInfra, OpenRouter, vLLM, Ollama, …

* text models: ``POST {base}/chat/completions``; usage from ``usage.prompt_tokens`` / ``completion_tokens``;
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
from shared.providers.base import Completed, GenerationRequest, Output, PermanentError, Running
from shared.providers.http import HttpProvider, malformed
from shared.providers.local import count_tokens
from shared.providers.params import upstream_input

# -- pure request builders and response parsers ---------------------------------------------------------


def build_chat_request(route: Route, params: dict[str, Any]) -> dict[str, Any]:
    body = {"model": route.upstream_model, **upstream_input(route, params)}
    body["stream"] = False
    return body


def parse_chat_response(provider: str, data: Any, params: dict[str, Any]) -> Completed:
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise malformed(provider, "choices")
    choice = choices[0]
    message: dict[str, Any] = choice["message"] if isinstance(choice.get("message"), dict) else {}
    content = message.get("content")
    if not content and (choice.get("finish_reason") == "content_filter" or message.get("refusal")):
        raise PermanentError(
            f"{provider} refused the request under its content policy", code="content_policy_violation"
        )
    if not isinstance(content, str):
        raise malformed(provider, "choices[0].message.content")
    usage: dict[str, Any] = data["usage"] if isinstance(data.get("usage"), dict) else {}
    prompt_tokens, completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not (isinstance(prompt_tokens, int) and isinstance(completion_tokens, int)):
        # No usage reported (some self-hosted servers): estimate it the way the local provider counts.
        prompt_tokens = sum(count_tokens(m.get("content", "")) + 4 for m in params.get("messages", [])) + 2
        completion_tokens = count_tokens(content)
    finish = choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None
    return Completed(
        outputs=[Output(type="text", text=content, content_type="text/plain", finish_reason=finish)],
        usage=Usage(input_tokens=max(0, prompt_tokens), output_tokens=max(0, completion_tokens)),
    )


def build_image_request(route: Route, params: dict[str, Any]) -> dict[str, Any]:
    body = {
        "model": route.upstream_model,
        "response_format": "b64_json",
        **upstream_input(route, params),
    }
    return {key: value for key, value in body.items() if value is not None}


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
        if kind == "image":
            data = await self._call("POST", "/images/generations", build_image_request(request.route, request.params))
            return parse_image_response(self.name, data)
        raise PermanentError(f"{self.name} cannot generate {kind} through this API", code="unsupported_model")

    async def poll(self, request: GenerationRequest, upstream_id: str) -> Completed | Running:
        raise PermanentError(f"{self.name} has no upstream jobs to poll", code="unsupported_operation")

    async def cancel(self, request: GenerationRequest, upstream_id: str) -> None:
        return None
