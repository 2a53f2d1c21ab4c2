"""Image generations and edits (OpenAI's ``POST /v1/images/generations`` and ``/v1/images/edits``) as tasks,
waited for.

The request becomes a task of the image model (queued, run by a worker with its retries and fallbacks, charged
per image like any task); the API waits for it up to ``IMAGE_GENERATION_WAIT_S`` and answers in OpenAI's
shape: ``{"created", "data": [{"url"} | {"b64_json"}]}``. URLs are signed links to Conduit's own copies of
the images. When the wait runs out the task goes on: the error names its id, to poll ``GET /v1/tasks/{id}``.
An edit's ``image`` and ``mask`` files become the model's ``image`` and ``mask`` inputs (checked and stored like
any input file: ``shared.media.inputs``); a model that takes no input image refuses them naming the field.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from shared.accounts.keys import Principal
from shared.catalog import Catalog
from shared.infra.db import Database
from shared.infra.errors import ConduitError, InsufficientCredits, InvalidInput, ModelUnavailable, UpstreamFailed
from shared.infra.queue import JobQueue
from shared.infra.storage import LocalStorage, UrlSigner
from shared.ledger import record_refused_request
from shared.media.sources import MediaSources
from shared.moderation.pipeline import Moderator
from shared.openai_api.chat_input import check_available, find_model
from shared.openai_api.routing import UpstreamRefused
from shared.providers import ProviderRegistry
from shared.tasks import TERMINAL
from shared.tasks.queries import get_task
from shared.tasks.records import TaskRecord
from shared.tasks.submit import TaskSubmission, submit_task

SOURCE = "image.generation"
RESPONSE_FORMATS = ("url", "b64_json")
_SIZE = re.compile(r"(\d{1,5})x(\d{1,5})")
_REFUSALS = frozenset({"content_policy_violation", "upstream_invalid_request", "upstream_rejected"})


class GenerationPending(ConduitError):
    """The wait ran out; the task goes on and can be polled."""

    code = "generation_timeout"

    def __init__(self, task_id: uuid.UUID, waited_s: float) -> None:
        super().__init__(
            f"the image generation did not finish within {waited_s:g} s; it continues as task {task_id}: "
            f"poll GET /v1/tasks/{task_id} for its result"
        )
        self.task_id = task_id
        self.headers = {
            "Location": f"/v1/tasks/{task_id}",
            "X-Conduit-Task-Id": str(task_id),
            "x-should-retry": "false",
        }


@dataclass(slots=True)
class ImageInput:
    model: str
    prompt: Any
    n: int | None = None
    size: str | None = None
    response_format: str | None = None
    image: str | None = None  # edits: the input files, as data: URIs
    mask: str | None = None


@dataclass(frozen=True, slots=True)
class ImageDeps:
    db: Database
    queue: JobQueue
    catalog: Catalog
    providers: ProviderRegistry
    storage: LocalStorage
    signer: UrlSigner
    wait_s: float
    moderator: Moderator
    media: MediaSources | None = None


class GeneratedImage(msgspec.Struct):
    """An image: its signed ``url``, or (``response_format`` ``b64_json``) its bytes in base64."""

    url: str | msgspec.UnsetType = msgspec.UNSET
    b64_json: str | msgspec.UnsetType = msgspec.UNSET


class ImagesResponse(msgspec.Struct):
    """OpenAI's images response."""

    created: int
    data: list[GeneratedImage]


async def generate_images(
    deps: ImageDeps, principal: Principal, body: ImageInput, task_id: uuid.UUID
) -> ImagesResponse:
    """Submit the task (its id given: its rate-limit slot is taken for it) and wait for its images."""
    model = find_model(deps.catalog, principal, body.model, "image")
    started = time.monotonic()
    try:
        check_available(deps.providers, model)
        params = _task_input(body, takes_count=model.parameter("num_images") is not None)
        task, _ = await submit_task(
            db=deps.db,
            queue=deps.queue,
            catalog=deps.catalog,
            providers=deps.providers,
            principal=principal,
            submission=TaskSubmission(model=model.id, input=params, source=SOURCE),
            moderator=deps.moderator,
            task_id=task_id,
            media=deps.media,
        )
    except (InvalidInput, InsufficientCredits, ModelUnavailable) as exc:
        latency_ms = int((time.monotonic() - started) * 1000)
        await record_refused_request(
            deps.db, principal=principal, source=SOURCE, model=model.id, kind="image", latency_ms=latency_ms
        )
        if isinstance(exc, InvalidInput) and (exc.param or "").startswith("input."):
            param = {"input.num_images": "n", "input.width": "size", "input.height": "size"}.get(exc.param or "")
            raise InvalidInput(exc.message, code=exc.code, param=param or (exc.param or "")[6:]) from None
        raise
    done = await wait_terminal(deps.db, principal.account_id, task.id, deps.wait_s)
    if done is None:
        raise GenerationPending(task.id, deps.wait_s)
    if done.status != "succeeded":
        message = f"task {task.id} {done.status}: {done.error_message or done.error_code or 'no reason given'}"
        if done.error_code in _REFUSALS:
            raise UpstreamRefused(message, code=done.error_code)
        raise UpstreamFailed(message, code=done.error_code or "upstream_error")
    response_format = body.response_format or "url"
    data = [await _item(deps, output, response_format) for output in done.outputs if output.get("type") == "image"]
    return ImagesResponse(created=int(done.created_at.timestamp()), data=data)


def _task_input(body: ImageInput, *, takes_count: bool) -> dict[str, Any]:
    """The task input of the request; ``n`` = 1 (OpenAI's default) asks nothing of a model that makes one image."""
    if (body.response_format or "url") not in RESPONSE_FORMATS:
        raise InvalidInput("response_format must be 'url' or 'b64_json'", param="response_format")
    params: dict[str, Any] = {"prompt": body.prompt}
    if body.n is not None and (takes_count or body.n != 1):
        params["num_images"] = body.n
    if body.size is not None and body.size != "auto":
        match = _SIZE.fullmatch(body.size)
        if match is None:
            raise InvalidInput("size must look like '1024x1024'", param="size")
        params["width"], params["height"] = int(match.group(1)), int(match.group(2))
    if body.image is not None:
        params["image"] = body.image
    if body.mask is not None:
        params["mask"] = body.mask
    return params


async def _item(deps: ImageDeps, output: dict[str, Any], response_format: str) -> GeneratedImage:
    if response_format == "url":
        return GeneratedImage(url=deps.signer.url(output["key"]))
    raw = await asyncio.to_thread(deps.storage.path(output["key"]).read_bytes)
    return GeneratedImage(b64_json=base64.b64encode(raw).decode())


async def wait_terminal(db: Database, account_id: uuid.UUID, task_id: uuid.UUID, wait_s: float) -> TaskRecord | None:
    """The task once it is terminal, or None when ``wait_s`` ran out. Polls the row, quickly at first."""
    deadline = time.monotonic() + wait_s
    delay = 0.02
    while True:
        task = await get_task(db, account_id, task_id)
        if task.status in TERMINAL:
            return task
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 1.5, 0.25)
