"""``POST /v1/embeddings``: OpenAI's embeddings for the catalog's embedding models, billed like a chat completion.

Fields: ``model``, ``input`` (a string or a list of up to the model's ``max_inputs`` non-empty strings; token-id
arrays are refused), ``dimensions`` (at most the model's vector size; a smaller one needs its
``custom_dimensions``), ``encoding_format`` (``float``, the default, or ``base64``: little-endian float32),
``user`` (sent upstream). Any other field is refused with ``400`` naming it.

The request holds its worst case (every byte of every input a token, each input capped at the model's
``max_context``), runs through the model's routes that have the capabilities it uses (retries, fallbacks, circuit
breaker), is charged for the input tokens the upstream reports and recorded as usage (``source`` ``embedding``).
The answer goes out before the settlement commits, as a chat completion's does.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from shared.accounts.keys import Principal
from shared.catalog import Catalog, Model
from shared.catalog.capabilities import Need
from shared.infra.background import BackgroundTasks
from shared.infra.db import Database
from shared.infra.errors import InsufficientCredits, InvalidInput, ModelUnavailable
from shared.infra.ids import uuid7
from shared.moderation.pipeline import Moderator
from shared.openai_api import pricing
from shared.openai_api.billing import open_bill, record_refusal
from shared.openai_api.chat_input import check_available, find_model, refuse_missing
from shared.openai_api.routing import call_routes, choose_routes, with_routes
from shared.providers import ProviderRegistry
from shared.providers.embeddings import create_embeddings, encode_base64

SOURCE = "embedding"
FIELDS = frozenset({"model", "input", "dimensions", "encoding_format", "user"})
MAX_INPUTS = 2048  # OpenAI's own bound, for models that declare none


@dataclass(slots=True)
class EmbeddingInput:
    model: str
    inputs: list[str]
    dimensions: int | None
    encoding_format: str
    user: str | None


def parse_embedding_body(body: Any) -> EmbeddingInput:
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object", code="invalid_request")
    present = {key: value for key, value in body.items() if value is not None}
    unknown = sorted(set(present) - FIELDS)
    if unknown:
        raise InvalidInput(f"Conduit does not support the field {unknown[0]!r}", param=unknown[0])
    model = present.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidInput("model is required (an embedding model id; see GET /v1/models)", param="model")
    raw = present.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs or not all(isinstance(text, str) for text in inputs):
        raise InvalidInput("input must be a string or a list of strings (token arrays are not supported)",
                           param="input")  # fmt: skip
    for index, text in enumerate(inputs):
        if not text:
            raise InvalidInput("inputs must not be empty strings", param="input" if raw is text else f"input[{index}]")
    dimensions = present.get("dimensions")
    if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1):
        raise InvalidInput("dimensions must be a positive integer", param="dimensions")
    encoding = present.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise InvalidInput('encoding_format must be "float" or "base64"', param="encoding_format")
    user = present.get("user")
    if user is not None and (not isinstance(user, str) or len(user) > 256):
        raise InvalidInput("user must be a string of at most 256 characters", param="user")
    return EmbeddingInput(model, inputs, dimensions, encoding, user)


class Embedding(msgspec.Struct):
    """One input's vector: numbers, or (``encoding_format`` ``base64``) little-endian float32s in base64."""

    object: Literal["embedding"]
    index: int
    embedding: list[float] | str


class EmbeddingUsage(msgspec.Struct):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(msgspec.Struct):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    provider: str
    usage: EmbeddingUsage


def _prepare(providers: ProviderRegistry, model: Model, body: EmbeddingInput) -> tuple[Model, dict[str, Any]]:
    """The model narrowed to the routes that can serve the request, and the parameters sent to them."""
    check_available(providers, model)
    size = model.capabilities.model.dimensions or 0
    needs = [Need("max_inputs", "input", len(body.inputs))]
    if len(body.inputs) > MAX_INPUTS:
        raise InvalidInput(f"input may hold at most {MAX_INPUTS} texts", param="input")
    if body.dimensions is not None and body.dimensions != size:
        needs += [Need("custom_dimensions", "dimensions"), Need("dimensions", "dimensions", body.dimensions)]
    refuse_missing(model, needs)
    routes = choose_routes(providers, model, needs, None)
    params: dict[str, Any] = {"input": body.inputs, "model_dimensions": size, "dimensions": body.dimensions or size}
    if body.user:
        params["user"] = body.user
    return with_routes(model, routes), params


async def create(
    db: Database,
    background: BackgroundTasks,
    catalog: Catalog,
    providers: ProviderRegistry,
    principal: Principal,
    raw: Any,
    budget_s: float,
    moderator: Moderator,
) -> tuple[EmbeddingList, int]:
    """The embeddings response, and the credits it is charged (its settlement runs on its own). The inputs are
    moderated before anything is held."""
    started = time.monotonic()
    model_id = raw.get("model") if isinstance(raw, dict) else None
    if not isinstance(model_id, str) or not model_id:
        raise InvalidInput("model is required (an embedding model id; see GET /v1/models)", param="model")
    model = find_model(catalog, principal, model_id, "embedding")
    try:
        body = parse_embedding_body(raw)
        served, params = _prepare(providers, model, body)
        request_id = uuid7()
        await moderator.check_request(principal, params, source=SOURCE, model=model.id, kind="embedding",
                                      request_id=request_id)  # fmt: skip
        worst_case = pricing.embedding_worst_case(model, body.inputs)
        bill = await open_bill(db, background, principal, worst_case, source=SOURCE, kind="embedding", model=model.id,
                               started=started, request_id=request_id)  # fmt: skip
    except (InvalidInput, InsufficientCredits, ModelUnavailable):
        await record_refusal(db, principal, source=SOURCE, kind="embedding", model=model.id, started=started)
        raise
    try:
        result, provider = await call_routes(providers, served, params, create_embeddings,
                                             budget_s=min(budget_s, served.max_runtime_s))  # fmt: skip
    except BaseException:
        await asyncio.shield(bill.settle(charge=0, units={}, status="failed", model=model.id, provider=None))
        raise
    charged = pricing.charge(model, result.usage, 1, bill.hold)
    bill.settle(charge=charged, units=pricing.billed_units(result.usage, 1), status="succeeded", model=model.id,
                provider=provider)  # fmt: skip
    encode = encode_base64 if body.encoding_format == "base64" else list
    data = [Embedding(object="embedding", index=i, embedding=encode(v)) for i, v in enumerate(result.vectors)]
    tokens = result.usage.input_tokens
    response = EmbeddingList(object="list", data=data, model=model.id, provider=provider,
                             usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens))  # fmt: skip
    return response, charged
