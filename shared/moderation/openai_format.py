"""``POST /v1/moderations``: OpenAI's moderation request and answer, classified by the server's own pipeline
(``Moderator.classify``: the operator's rules, then the moderation model the policy names).

``input`` is a string, a list of strings, or a list of ``{"type": "text", "text": …}`` objects (image inputs are
refused with ``400`` naming ``input``: no image check is configured); ``model`` one of the catalog's
``moderation`` models (default ``omni-moderation-latest``). A category is ``true`` when a check found it and the
policy does not ``allow`` it; ``flagged`` when any is. Scores are the moderation model's, or 1.0 for a rule's
match. A classification is not a strike: nothing is recorded but its usage record (``source`` ``moderation``),
charged at the model's catalog price per request (free as shipped).
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from shared.accounts.key_policy import check_model_allowed
from shared.accounts.keys import Principal
from shared.catalog import Catalog, Model
from shared.catalog.pricing import Usage, cost
from shared.infra.background import BackgroundTasks
from shared.infra.db import Database
from shared.infra.errors import InvalidInput, NotFound
from shared.infra.ids import uuid7
from shared.moderation.categories import ALLOW, CATEGORIES
from shared.moderation.decisions import TextResult
from shared.moderation.pipeline import Moderator
from shared.openai_api.billing import open_bill
from shared.usage import record_request_usage

SOURCE = "moderation"
DEFAULT_MODEL = "omni-moderation-latest"
MAX_INPUTS = 256
MAX_INPUT_CHARS = 100_000


class ModerationBody(msgspec.Struct, forbid_unknown_fields=True):
    """OpenAI's moderation request."""

    input: Any
    model: str | None = None


class ModerationResult(msgspec.Struct):
    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]
    category_applied_input_types: dict[str, list[str]]


class ModerationResponse(msgspec.Struct):
    """OpenAI's moderation object: a result per input, in order."""

    id: str
    model: str
    results: list[ModerationResult]


def parse_inputs(raw: Any) -> list[str]:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        raise InvalidInput("input must be a string or a non-empty list of strings or text objects", param="input")
    if len(items) > MAX_INPUTS:
        raise InvalidInput(f"input may hold at most {MAX_INPUTS} items", param="input")
    texts: list[str] = []
    for index, item in enumerate(items):
        param = "input" if isinstance(raw, str) else f"input[{index}]"
        if isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str):
            item = item["text"]
        elif isinstance(item, dict) and item.get("type") == "image_url":
            raise InvalidInput("image inputs are not moderated by this server: send text", param=param)
        if not isinstance(item, str):
            raise InvalidInput("each input must be a string or a {type: text, text} object", param=param)
        if len(item) > MAX_INPUT_CHARS:
            raise InvalidInput(f"each input may be at most {MAX_INPUT_CHARS} characters", param=param)
        texts.append(item)
    return texts


def _model(catalog: Catalog, principal: Principal, model_id: str | None) -> Model:
    model_id = DEFAULT_MODEL if model_id is None else model_id
    model = catalog.get(model_id)
    if model is None or model.kind != "moderation":
        raise NotFound(f"the model {model_id!r} does not exist or is not a moderation model; see GET /v1/models",
                       code="model_not_found", param="model")  # fmt: skip
    check_model_allowed(principal, model.id)
    return model


def _result(moderator: Moderator, result: TextResult) -> ModerationResult:
    found = {name for name in result.hits if moderator.policy.action(name) != ALLOW}
    return ModerationResult(
        flagged=bool(found),
        categories={name: name in found for name in CATEGORIES},
        category_scores={name: result.scores.get(name, 1.0 if name in found else 0.0) for name in CATEGORIES},
        category_applied_input_types={name: ["text"] if name in found else [] for name in CATEGORIES},
    )


async def moderations(
    db: Database,
    background: BackgroundTasks,
    catalog: Catalog,
    moderator: Moderator,
    principal: Principal,
    body: ModerationBody,
) -> tuple[ModerationResponse, int]:
    """The classification of each input, and the credits it was charged."""
    started = time.monotonic()
    model = _model(catalog, principal, body.model)
    texts = parse_inputs(body.input)
    price = cost(model.pricing, Usage(requests=1))
    bill = None
    if price > 0:
        bill = await open_bill(db, background, principal, price, source=SOURCE, kind=model.kind, model=model.id,
                               started=started)  # fmt: skip
    try:
        results = await moderator.classify(texts)
    except BaseException:
        if bill is not None:
            bill.settle(charge=0, units={}, status="failed", model=model.id, provider=None)
        raise
    request_id = uuid7()
    if bill is not None:
        bill.settle(charge=price, units={"requests": 1}, status="succeeded", model=model.id, provider="local")
        request_id = bill.request_id
    else:
        await record_request_usage(
            db.pool, request_id=request_id, source=SOURCE, account_id=principal.account_id,
            api_key_id=principal.api_key_id, model=model.id, provider="local", kind=model.kind, status="succeeded",
            units={"requests": 1}, credits=0, latency_ms=int((time.monotonic() - started) * 1000),
        )  # fmt: skip
    response = ModerationResponse(
        id=f"modr-{request_id.hex}",
        model=model.id,
        results=[_result(moderator, result) for result in results],
    )
    return response, price
