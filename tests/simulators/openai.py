"""An OpenAI-compatible API: ``POST /v1/chat/completions`` and ``POST /v1/images/generations``.

Chat answers are the recorded completion with the reply text replaced (usage as recorded, so charges are
predictable); images are real PNGs of the requested size, as ``b64_json`` or as a ``url`` on this server.
Errors use OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import base64
import copy
import re
import uuid
from typing import Any

from litestar import Request, Response, post

from tests.simulators.base import Simulator, payload
from tests.simulators.media import png


class OpenAISimulator(Simulator):
    name = "openai"

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.usages: list[dict[str, int]] = []  # the usage reported in each chat answer

    def reset_state(self) -> None:
        self.usages.clear()

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def unauthorized(self) -> Response[Any]:
        body = {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                          "param": None, "code": "invalid_api_key"}}  # fmt: skip
        return Response(body, status_code=401)

    def handlers(self) -> list[Any]:
        sim = self

        @post("/v1/chat/completions", status_code=200)
        async def chat(request: Request[Any, Any, Any]) -> Response[Any]:
            if (early := await sim.enter("chat", request)) is not None:
                return early
            body = await request.json()
            completion = copy.deepcopy(payload("openai_chat_completion"))
            last = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
            reply = f"Simulated reply to: {last}"
            completion["model"] = body["model"]
            completion["choices"][0]["message"]["content"] = reply
            # Usage the way a tokenizer would count it (one token per word here), never the recorded numbers.
            prompt_tokens = sum(len(m["content"].split()) + 4 for m in body["messages"])
            completion_tokens = min(len(reply.split()), int(body.get("max_tokens") or 4096))
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                     "total_tokens": prompt_tokens + completion_tokens}  # fmt: skip
            completion["usage"].update(usage)
            sim.usages.append(usage)
            return Response(completion)

        @post("/v1/images/generations", status_code=200)
        async def images(request: Request[Any, Any, Any]) -> Response[Any]:
            if (early := await sim.enter("images", request)) is not None:
                return early
            body = await request.json()
            if "size" in body:
                match = re.fullmatch(r"(\d+)x(\d+)", str(body["size"]))
                width, height = (int(match.group(1)), int(match.group(2))) if match else (1024, 1024)
            else:
                width, height = int(body.get("width", 1024)), int(body.get("height", 1024))
            items = []
            for index in range(int(body.get("n", 1))):
                data = png(width, height, seed=index)
                if body.get("response_format") == "url":
                    # Served without a useful Content-Type: the type must be judged from the bytes.
                    url = sim.host_file(f"{uuid.uuid4().hex}.png", data, "application/octet-stream")
                    items.append({"url": url, "revised_prompt": body.get("prompt")})
                else:
                    items.append({"b64_json": base64.b64encode(data).decode()})
            return Response({"created": 1713833628, "data": items})

        return [chat, images]
