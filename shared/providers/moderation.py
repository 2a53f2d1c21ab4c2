"""Moderation models: OpenAI's moderation API (``POST /moderations``, e.g. ``omni-moderation-latest``) and a Llama
Guard model served by an OpenAI-compatible provider (``POST /chat/completions``, answering ``safe`` or
``unsafe`` and its hazard codes). Each call has the policy's timeout; any failure (HTTP error, timeout,
malformed answer) is a ``ProviderError`` that the moderation pipeline turns into the per-category fail-open or
fail-closed decision (``shared.moderation.pipeline``)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.catalog.providers import ResolvedProvider
from shared.moderation.categories import CATEGORIES, LLAMA_GUARD_CODES
from shared.providers.base import RetryableError
from shared.providers.http import HttpProvider, malformed, send_json
from shared.providers.upstream_client import UpstreamClient

_HAZARD = re.compile(r"S\d{1,2}")
OPENAI_BATCH = 32  # texts per call to OpenAI's moderation API


@dataclass(frozen=True, slots=True)
class ModelVerdict:
    """A moderation model's verdict on one text: the categories it is in, and a score per category."""

    categories: frozenset[str]
    scores: dict[str, float] = field(default_factory=dict)


class ModerationModel(HttpProvider):
    """One moderation model on one provider, speaking ``protocol`` (``openai_moderation`` or ``llama_guard``)."""

    def __init__(
        self, resolved: ResolvedProvider, http: UpstreamClient, *, protocol: str, model: str, timeout_s: float
    ) -> None:
        super().__init__(resolved, http)
        self.protocol = protocol
        self.model = model
        self.timeout_s = timeout_s

    async def classify(self, texts: list[str]) -> list[ModelVerdict]:
        """A verdict per text, in order, within the timeout."""
        try:
            async with asyncio.timeout(self.timeout_s):
                if self.protocol == "llama_guard":
                    return list(await asyncio.gather(*(self._llama_guard(text) for text in texts)))
                return await self._openai(texts)
        except TimeoutError as exc:
            raise RetryableError(f"{self.name} did not answer in time", code="upstream_timeout") from exc

    async def classify_images(self, urls: list[str]) -> list[ModelVerdict]:
        """A verdict per image (a ``data:`` URI or an URL), in order, within the timeout: OpenAI's moderation API
        takes one image per input (``{"type": "image_url", "image_url": {"url": ...}}``), so one call each."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return list(await asyncio.gather(*(self._openai_image(url) for url in urls)))
        except TimeoutError as exc:
            raise RetryableError(f"{self.name} did not answer in time", code="upstream_timeout") from exc

    async def _openai_image(self, url: str) -> ModelVerdict:
        body = {"model": self.model, "input": [{"type": "image_url", "image_url": {"url": url}}]}
        data = await self._post("/moderations", body)
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list) or len(results) != 1:
            raise malformed(self.name, "a result for the image")
        return openai_verdict(self.name, results[0])

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        timeout = httpx.Timeout(self.timeout_s)
        url = f"{self._resolved.base_url}{path}"
        return await send_json(self._http, "POST", url, provider=self.name, headers=self._headers(), body=body,
                               timeout=timeout)  # fmt: skip

    async def _openai(self, texts: list[str]) -> list[ModelVerdict]:
        """One call per ``OPENAI_BATCH`` texts, at once."""
        batches = [texts[start : start + OPENAI_BATCH] for start in range(0, len(texts), OPENAI_BATCH)]
        verdicts = await asyncio.gather(*(self._openai_batch(batch) for batch in batches))
        return [verdict for batch in verdicts for verdict in batch]

    async def _openai_batch(self, texts: list[str]) -> list[ModelVerdict]:
        data = await self._post("/moderations", {"model": self.model, "input": texts})
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list) or len(results) != len(texts):
            raise malformed(self.name, "a result per input")
        return [openai_verdict(self.name, result) for result in results]

    async def _llama_guard(self, text: str) -> ModelVerdict:
        body = {"model": self.model, "messages": [{"role": "user", "content": text}], "max_tokens": 32,
                "temperature": 0}  # fmt: skip
        data = await self._post("/chat/completions", body)
        try:
            answer = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise malformed(self.name, "a chat completion") from None
        if not isinstance(answer, str):
            raise malformed(self.name, "a chat completion")
        return llama_guard_verdict(self.name, answer)


def openai_verdict(provider: str, result: Any) -> ModelVerdict:
    """One entry of OpenAI's ``results``: its ``categories`` booleans and ``category_scores``."""
    if not isinstance(result, dict) or not isinstance(result.get("categories"), dict):
        raise malformed(provider, "categories in each result")
    hits = frozenset(name for name, hit in result["categories"].items() if hit is True and name in CATEGORIES)
    raw_scores = result.get("category_scores")
    scores = (
        {}
        if not isinstance(raw_scores, dict)
        else {
            name: float(score)
            for name, score in raw_scores.items()
            if name in CATEGORIES and isinstance(score, int | float) and not isinstance(score, bool)
        }
    )
    return ModelVerdict(hits, scores)


def llama_guard_verdict(provider: str, answer: str) -> ModelVerdict:
    """``safe``, or ``unsafe`` followed by its hazard codes (``S1,S10``) on the next line."""
    lines = answer.strip().splitlines()
    first = lines[0].strip().lower() if lines else ""
    if first == "safe":
        return ModelVerdict(frozenset())
    if first != "unsafe":
        raise malformed(provider, "a safe/unsafe verdict")
    codes = _HAZARD.findall(" ".join(lines[1:]))
    categories = frozenset(LLAMA_GUARD_CODES[code] for code in codes if code in LLAMA_GUARD_CODES) or frozenset(
        {"illicit"}
    )  # unsafe without a known code: the broadest category
    return ModelVerdict(categories, {category: 1.0 for category in categories})
