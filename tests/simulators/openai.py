"""An OpenAI-compatible API: ``POST /v1/chat/completions`` and ``POST /v1/images/generations``.

Chat answers are the recorded completion with the reply text replaced (usage as recorded, so charges are
predictable); images are real PNGs of the requested size, as ``b64_json`` or as a ``url`` on this server.
Errors use OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

from litestar import Request, Response, post
from litestar.response import Stream

from tests.simulators.base import Simulator, payload
from tests.simulators.media import png


class OpenAISimulator(Simulator):
    name = "openai"

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.usages: list[dict[str, int]] = []  # the usage reported in each chat answer
        self.stream_cut_after: int | None = None  # streamed answers: drop the connection after this many words
        self.stream_delay_s = 0.0  # streamed answers: pause before each word

    def reset_state(self) -> None:
        self.usages.clear()
        self.stream_cut_after = None
        self.stream_delay_s = 0.0

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
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return Stream(sim.chunks(completion, reply, usage, include_usage), media_type="text/event-stream")
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

    async def chunks(
        self, completion: dict[str, Any], reply: str, usage: dict[str, int], include_usage: bool
    ) -> AsyncIterator[bytes]:
        """OpenAI's streamed answer: a role chunk, one chunk per word, a finish chunk, the usage, [DONE]."""
        head = {"id": completion["id"], "object": "chat.completion.chunk", "created": completion["created"],
                "model": completion["model"], "system_fingerprint": "fp_sim"}  # fmt: skip

        def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
            chunk = {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            if include_usage:
                chunk["usage"] = None
            return b"data: " + json.dumps(chunk).encode() + b"\n\n"

        yield event({"role": "assistant", "content": "", "refusal": None})
        for index, word in enumerate(reply.split(" ")):
            if self.stream_cut_after is not None and index >= self.stream_cut_after:
                raise ConnectionAbortedError("simulated cut")  # the server drops the connection mid-answer
            if self.stream_delay_s:
                await asyncio.sleep(self.stream_delay_s)
            yield event({"content": word if index == 0 else f" {word}"})
        yield event({}, "stop")
        if include_usage:
            yield b"data: " + json.dumps({**head, "choices": [], "usage": usage}).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"
