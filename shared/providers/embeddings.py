"""Embeddings from providers: what ``POST /v1/embeddings`` calls through a model's routes.

* OpenAI-compatible upstreams: ``POST {base}/embeddings`` with ``input`` (a list of strings), ``dimensions`` when
  the request asked for fewer than the model's, and ``user``; the vectors as floats (or base64 float32, which
  some servers send anyway) in ``data[].embedding``, in ``index`` order; usage from ``usage.prompt_tokens``.
* ``local``: deterministic vectors drawn from each input's text (the same text, the same vector), cut to the
  requested ``dimensions`` and normalised to length 1; tokens counted like the local chat counts them.

The request's parameters: ``input`` (list of strings), ``dimensions`` (the size wanted), ``model_dimensions`` (the
model's size, never sent), ``user``.
"""

from __future__ import annotations

import array
import base64
import binascii
import hashlib
import math
import random
import sys
from dataclasses import dataclass
from typing import Any

from shared.catalog.pricing import Usage
from shared.providers.base import GenerationRequest, PermanentError, Provider
from shared.providers.http import malformed
from shared.providers.local import LocalProvider, count_tokens


@dataclass(slots=True)
class Embeddings:
    vectors: list[list[float]]
    usage: Usage


def build_embedding_request(upstream_model: str, params: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"model": upstream_model, "input": params["input"]}
    if params.get("dimensions") is not None and params["dimensions"] != params.get("model_dimensions"):
        body["dimensions"] = params["dimensions"]
    if params.get("user"):
        body["user"] = params["user"]
    return body


def parse_embedding_response(provider: str, data: Any, params: dict[str, Any]) -> Embeddings:
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list) or len(items) != len(params["input"]):
        raise malformed(provider, "one embedding per input")
    vectors: list[list[float] | None] = [None] * len(items)
    for position, item in enumerate(items):
        index = item.get("index", position) if isinstance(item, dict) else None
        if not isinstance(index, int) or not 0 <= index < len(items) or vectors[index] is not None:
            raise malformed(provider, "data[].index")
        vectors[index] = _vector(provider, item.get("embedding"))
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    tokens = usage.get("prompt_tokens")
    if not isinstance(tokens, int) or tokens < 0:
        tokens = sum(count_tokens(text) for text in params["input"])  # a server that reports none
    return Embeddings([v for v in vectors if v is not None], Usage(input_tokens=tokens))


def _vector(provider: str, raw: Any) -> list[float]:
    if isinstance(raw, str):
        try:
            return decode_base64(raw)
        except (binascii.Error, ValueError):
            raise malformed(provider, "base64 float32 in data[].embedding") from None
    if isinstance(raw, list) and raw:
        try:
            return array.array("d", raw).tolist()  # checks and converts in C: a vector has thousands of numbers
        except TypeError:
            pass
    raise malformed(provider, "numbers in data[].embedding")


def encode_base64(vector: list[float]) -> str:
    """OpenAI's ``encoding_format: base64``: the vector as little-endian float32, base64-encoded."""
    floats = array.array("f", vector)
    if sys.byteorder == "big":
        floats.byteswap()
    return base64.b64encode(floats.tobytes()).decode()


def decode_base64(text: str) -> list[float]:
    raw = base64.b64decode(text, validate=True)
    if len(raw) % 4:
        raise ValueError("not float32")
    floats = array.array("f", raw)
    if sys.byteorder == "big":
        floats.byteswap()
    return floats.tolist()


def local_vector(text: str, size: int, dimensions: int) -> list[float]:
    """The local route's vector of ``text``: ``size`` numbers drawn from it, the first ``dimensions`` kept,
    normalised to length 1 (so a shortened vector is the start of the full one, renormalised)."""
    rng = random.Random(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"))
    values = [rng.gauss(0.0, 1.0) for _ in range(size)][:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


async def create_embeddings(provider: Provider, request: GenerationRequest) -> Embeddings:
    params = request.params
    if isinstance(provider, LocalProvider):
        size = int(params["model_dimensions"])
        wanted = int(params.get("dimensions") or size)
        vectors = [local_vector(text, size, wanted) for text in params["input"]]
        return Embeddings(vectors, Usage(input_tokens=sum(count_tokens(text) for text in params["input"])))
    embed = getattr(provider, "embed", None)
    if embed is None:
        raise PermanentError(f"{provider.name} cannot make embeddings", code="unsupported_model")
    result: Embeddings = await embed(request)
    return result
