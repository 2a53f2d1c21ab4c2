"""Moderation models, in their real wire formats:

* OpenAI's moderation API, ``POST /v1/moderations``: ``{"id", "model", "results": [{"flagged", "categories",
  "category_scores", "category_applied_input_types"}]}``, a result per input, every category of
  ``omni-moderation-latest`` present; ``input`` may also be omni-moderation's multi-modal list of
  ``{"type": "text", "text"}`` and ``{"type": "image_url", "image_url": {"url"}}`` items (one result for them all);
* a Llama Guard 3 model behind an OpenAI-compatible chat API, ``POST /v1/chat/completions``: the assistant's
  content is ``safe``, or ``unsafe`` and the hazard codes on the next line (``unsafe\\nS1``).

A text is in a category when it contains one of ``verdicts``' words (``simviolent`` -> violence, ...); faults
(errors, timeouts: ``Fault(status=None, delay_s=…)``) are scripted per operation, ``moderations`` or
``llama_guard``, like every simulator's.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

from litestar import Request, Response, post

from shared.moderation.categories import CATEGORIES
from tests.simulators.base import Simulator

LLAMA_GUARD_CODES = {"violence": "S1", "sexual/minors": "S4", "self-harm": "S11", "hate": "S10"}


class ModerationSimulator(Simulator):
    name = "moderation"

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.verdicts = dict(DEFAULT_VERDICTS)
        self.images_seen: list[str] = []

    def reset_state(self) -> None:
        self.verdicts = dict(DEFAULT_VERDICTS)
        self.images_seen = []

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def unauthorized(self) -> Response[Any]:
        body = {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                          "param": None, "code": "invalid_api_key"}}  # fmt: skip
        return Response(body, status_code=401)

    def categories_of(self, text: str) -> set[str]:
        lowered = text.lower()
        return {category for word, category in self.verdicts.items() if word in lowered}

    def image_text(self, item: dict[str, Any]) -> str:
        """What a multi-modal item "says", for the verdict words: its text, or for an image a ``data:`` URI's
        decoded bytes (a test image carries the word in its data) or the URL itself."""
        if item.get("type") != "image_url":
            return str(item.get("text", ""))
        url = str(item["image_url"]["url"])
        self.images_seen.append(url)
        if url.startswith("data:") and ";base64," in url:
            return base64.b64decode(url.split(";base64,", 1)[1]).decode("latin-1")
        return str(url)

    def handlers(self) -> list[Any]:
        sim = self

        @post("/v1/moderations", status_code=200)
        async def moderations(request: Request[Any, Any, Any]) -> Response[Any]:
            if (early := await sim.enter("moderations", request)) is not None:
                return early
            body = await request.json()
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            if inputs and all(isinstance(item, dict) for item in inputs):  # multi-modal items: one result for all
                inputs = [inputs]
            results = []
            for item in inputs:
                parts = [item] if isinstance(item, str) else [sim.image_text(part) for part in item]
                found = sim.categories_of(" ".join(parts))
                kind = "text" if isinstance(item, str) else "image"
                results.append({
                    "flagged": bool(found),
                    "categories": {name: name in found for name in CATEGORIES},
                    "category_scores": {name: 0.97 if name in found else 0.0003 for name in CATEGORIES},
                    "category_applied_input_types": {name: [kind] if name in found else [] for name in CATEGORIES},
                })  # fmt: skip
            return Response({"id": f"modr-{uuid.uuid4().hex}", "model": body.get("model"), "results": results})

        @post("/v1/chat/completions", status_code=200)
        async def llama_guard(request: Request[Any, Any, Any]) -> Response[Any]:
            if (early := await sim.enter("llama_guard", request)) is not None:
                return early
            body = await request.json()
            text = " ".join(m["content"] for m in body["messages"] if isinstance(m.get("content"), str))
            codes = sorted(LLAMA_GUARD_CODES[c] for c in sim.categories_of(text) if c in LLAMA_GUARD_CODES)
            verdict = f"unsafe\n{','.join(codes)}" if codes else "safe"
            return Response({
                "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": 1733300000,
                "model": body["model"],
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": verdict}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 120, "completion_tokens": 4, "total_tokens": 124},
            })  # fmt: skip

        return [moderations, llama_guard]


DEFAULT_VERDICTS = {"simviolent": "violence", "simminor": "sexual/minors", "simselfharm": "self-harm"}
