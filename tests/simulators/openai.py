"""An OpenAI-compatible API: ``POST /v1/chat/completions``, ``/v1/embeddings`` and ``/v1/images/generations``.

Chat answers are the recorded completion with its choices replaced (``openai_chat``: tool calls, JSON mode, stop,
n, logprobs, plain or streamed) and usage counted one token per word, with the cached and reasoning tokens the
test sets; embeddings are deterministic unit vectors (``dimensions`` honoured; floats or base64 float32); images
are real PNGs of the requested size, as ``b64_json`` or as a ``url`` on this server. Every call is recorded.
Errors use OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import io
import json
import math
import re
import struct
import uuid
from collections.abc import AsyncIterator
from typing import Any

from litestar import Request, Response, post
from litestar.datastructures import UploadFile
from litestar.response import Stream
from PIL import Image

from tests.simulators import openai_chat
from tests.simulators.base import Simulator, payload
from tests.simulators.media import png


class OpenAISimulator(Simulator):
    name = "openai"

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.usages: list[dict[str, int]] = []  # the usage reported in each chat answer
        self.stream_cut_after: int | None = None  # streamed answers: drop the connection after this many words
        self.stream_delay_s = 0.0  # streamed answers: pause before each word
        self.cached_tokens = 0  # reported as usage.prompt_tokens_details.cached_tokens
        self.reasoning_tokens = 0  # reported as usage.completion_tokens_details.reasoning_tokens
        self.embedding_size = 32  # the vector size when a request names no dimensions
        # image edits received: (text fields, files by part name as (filename, content type, bytes))
        self.image_edits: list[tuple[dict[str, str], dict[str, tuple[str, str, bytes]]]] = []

    def reset_state(self) -> None:
        self.image_edits.clear()
        self.usages.clear()
        self.stream_cut_after = None
        self.stream_delay_s = 0.0
        self.cached_tokens = 0
        self.reasoning_tokens = 0
        self.embedding_size = 32

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
            completion["model"] = body["model"]
            answer = openai_chat.choices(body)
            completion["choices"] = answer
            # Usage the way a tokenizer would count it (one token per word here), never the recorded numbers.
            prompt_tokens = openai_chat.prompt_tokens(body)
            completion_tokens = openai_chat.completion_tokens(answer)
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                     "total_tokens": prompt_tokens + completion_tokens}  # fmt: skip
            sim.usages.append(usage)
            completion["usage"] = {
                **usage,
                "prompt_tokens_details": {"cached_tokens": min(sim.cached_tokens, prompt_tokens), "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": sim.reasoning_tokens, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
            }  # fmt: skip
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return Stream(sim.chunks(completion, include_usage), media_type="text/event-stream")
            return Response(completion)

        @post("/v1/embeddings", status_code=200)
        async def embeddings(request: Request[Any, Any, Any]) -> Response[Any]:
            if (early := await sim.enter("embeddings", request)) is not None:
                return early
            body = await request.json()
            inputs = [body["input"]] if isinstance(body["input"], str) else body["input"]
            size = int(body.get("dimensions") or sim.embedding_size)
            items = []
            for index, text in enumerate(inputs):
                vector = embedding(text, size)
                encoded: Any = vector
                if body.get("encoding_format") == "base64":
                    encoded = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
                items.append({"object": "embedding", "index": index, "embedding": encoded})
            tokens = sum(len(text.split()) for text in inputs)
            return Response({"object": "list", "data": items, "model": body["model"],
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})  # fmt: skip

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

        @post("/v1/images/edits", status_code=200)
        async def image_edits(request: Request[Any, Any, Any]) -> Response[Any]:
            """OpenAI's multipart image edit: ``image`` (and ``mask``) file parts, the rest text fields."""
            if (early := await sim.enter("image_edits", request)) is not None:
                return early
            if request.content_type[0] != "multipart/form-data":
                return Response({"error": {"message": "expected multipart/form-data", "type": "invalid_request_error",
                                           "param": None, "code": None}}, status_code=400)  # fmt: skip
            form = await request.form()
            fields: dict[str, str] = {}
            files: dict[str, tuple[str, str, bytes]] = {}
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    files[name] = (value.filename, value.content_type, await value.read())
                else:
                    fields[name] = value
            sim.image_edits.append((fields, files))
            if "image" not in files or "prompt" not in fields:
                return Response({"error": {"message": "image and prompt are required", "type": "invalid_request_error",
                                           "param": "image", "code": None}}, status_code=400)  # fmt: skip
            with Image.open(io.BytesIO(files["image"][2])) as source:
                width, height = source.size
            items = [{"b64_json": base64.b64encode(png(width, height, seed=i)).decode()}
                     for i in range(int(fields.get("n", "1")))]  # fmt: skip
            return Response({"created": 1713833628, "data": items})

        return [chat, embeddings, images, image_edits]

    async def chunks(self, completion: dict[str, Any], include_usage: bool) -> AsyncIterator[bytes]:
        """OpenAI's streamed answer (``openai_chat.chunk_choices``), then the usage chunk when asked, then [DONE]."""
        head = {"id": completion["id"], "object": "chat.completion.chunk", "created": completion["created"],
                "model": completion["model"], "system_fingerprint": "fp_sim"}  # fmt: skip
        for delta, finish, logprobs in openai_chat.chunk_choices(completion["choices"]):
            index, word = delta.pop("_index"), delta.pop("_word", None)
            if word is not None and self.stream_cut_after is not None and word >= self.stream_cut_after:
                raise ConnectionAbortedError("simulated cut")  # the server drops the connection mid-answer
            if word is not None and self.stream_delay_s:
                await asyncio.sleep(self.stream_delay_s)
            chunk = {
                **head,
                "choices": [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
            }
            if include_usage:
                chunk["usage"] = None
            yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
        if include_usage:
            yield b"data: " + json.dumps({**head, "choices": [], "usage": completion["usage"]}).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"


def embedding(text: str, size: int) -> list[float]:
    """A deterministic unit vector for ``text``."""
    digest = hashlib.sha256(text.encode()).digest()
    values = [((digest[i % len(digest)] + i) % 17) - 8.0 + 0.5 for i in range(size)]
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]
