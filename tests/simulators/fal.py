"""fal.ai's queue: submit (``POST /{model id}``), status (``GET /{app}/requests/{id}/status``: IN_QUEUE with
``queue_position`` → IN_PROGRESS → COMPLETED), result (``GET /{app}/requests/{id}``), cancel
(``PUT /{app}/requests/{id}/cancel``). ``{app}`` is the model id without its sub-path, as at fal.

Model names decide the course: ``…/never`` stays in progress, ``…/slow`` completes after 6 s, others after
``finish_after_s``. Image models answer ``{"images": [...]}``; models with "video" in their id answer
``{"video": {...}}`` with an MP4 of the requested ``width`` x ``height`` (640x360 when not given) half a second
shorter than the requested ``duration`` (``…-long`` models: half a second longer).
"""

from __future__ import annotations

import copy
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response, route
from litestar.params import FromPath

from tests.simulators.base import Simulator, payload
from tests.simulators.media import mp4, png

_REQUEST_PATH = re.compile(r"/([^/]+/[^/]+)/requests/([0-9a-f-]+)(/status|/cancel)?")


@dataclass
class FalRequest:
    id: str
    app: str
    model: str
    input: dict[str, Any]
    created: float
    canceled: bool = False


class FalSimulator(Simulator):
    name = "fal"
    auth_scheme = "Key"
    default_finish_after_s = 0.4

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.requests: dict[str, FalRequest] = {}
        self.nsfw_images: set[int] = set()  # indexes of images the result flags in has_nsfw_concepts

    @property
    def base_url(self) -> str:
        return self.origin

    def reset_state(self) -> None:
        self.requests.clear()
        self.nsfw_images = set()

    def unauthorized(self) -> Response[Any]:
        return Response({"detail": "Unauthorized"}, status_code=401)

    def _urls(self, job: FalRequest) -> dict[str, str]:
        base = f"{self.origin}/{job.app}/requests/{job.id}"
        return {"response_url": base, "status_url": f"{base}/status", "cancel_url": f"{base}/cancel"}

    def _status(self, job: FalRequest, *, logs: bool = False) -> dict[str, Any]:
        """As fal answers: the queue position while queued; the request's logs so far only with ``?logs=1``
        (``null`` otherwise), one more line every 0.1 s of work."""
        elapsed = time.monotonic() - job.created
        duration = self.job_duration(job.model)
        if elapsed < 0.15:
            body = copy.deepcopy(payload("fal_status_in_queue"))
            body["queue_position"] = 2 if elapsed < 0.075 else 1
        elif elapsed < duration:
            body = copy.deepcopy(payload("fal_status_in_progress"))
            first = body["logs"][0]
            steps = min(50, int((elapsed - 0.15) / 0.1))
            body["logs"] = [first, *({**first, "message": f"Step {n}"} for n in range(1, steps + 1))]
        else:
            body = copy.deepcopy(payload("fal_status_completed"))
        if not logs:
            body["logs"] = None
        body["response_url"] = self._urls(job)["response_url"]
        return body

    def _result(self, job: FalRequest) -> dict[str, Any]:
        if "video" in job.model:
            seconds = float(job.input.get("duration", 5)) + (0.5 if job.model.endswith("-long") else -0.5)
            width, height = int(job.input.get("width", 640)), int(job.input.get("height", 360))
            url = self.host_file(f"{job.id}.mp4", mp4(width, height, seconds), "video/mp4")
            body = copy.deepcopy(payload("fal_result_video"))
            body["video"]["url"] = url
            return body
        size = job.input.get("image_size") or {"width": 1024, "height": 768}
        images = []
        for index in range(int(job.input.get("num_images", 1))):
            data = png(int(size["width"]), int(size["height"]), seed=index)
            url = self.host_file(f"{job.id}-{index}.png", data, "image/png")
            images.append({"url": url, "width": size["width"], "height": size["height"], "content_type": "image/png"})
        body = copy.deepcopy(payload("fal_result_images"))
        body.update(images=images, has_nsfw_concepts=[index in self.nsfw_images for index in range(len(images))])
        return body

    def handlers(self) -> list[Any]:
        sim = self

        @route("/{path:path}", http_method=["GET", "POST", "PUT"])
        async def queue(request: Request[Any, Any, Any], path: FromPath[str]) -> Response[Any]:
            match = _REQUEST_PATH.fullmatch(path)
            if request.method == "POST" and match is None:
                if (early := await sim.enter("submit", request)) is not None:
                    return early
                model = path.strip("/")
                body = await request.json()
                problem = await sim.take_file_inputs(body, ("image_url", "mask_url", "image_urls"))
                if problem is not None:
                    return Response({"detail": [{"loc": ["body"], "msg": problem, "type": "value_error"}]},
                                    status_code=422)  # fmt: skip
                job = FalRequest(str(uuid.uuid4()), "/".join(model.split("/")[:2]), model, body,
                                 time.monotonic())  # fmt: skip
                sim.requests[job.id] = job
                return Response({"request_id": job.id, **sim._urls(job), "queue_position": 3})
            if match is None:
                return Response({"detail": "Not Found"}, status_code=404)
            app, request_id, action = match.groups()
            operation = {"/status": "status", "/cancel": "cancel", None: "result"}[action]
            if (early := await sim.enter(operation, request)) is not None:
                return early
            found = sim.requests.get(request_id)
            if found is None or found.app != app:
                return Response({"detail": "Request not found"}, status_code=404)
            job = found
            if operation == "cancel":
                if sim._status(job)["status"] == "COMPLETED":
                    return Response({"status": "ALREADY_COMPLETED"}, status_code=400)
                job.canceled = True
                return Response({"status": "CANCELLATION_REQUESTED"}, status_code=202)
            if operation == "status":
                return Response(sim._status(job, logs=request.query_params.get("logs") == "1"))
            if sim._status(job)["status"] != "COMPLETED":
                return Response({"detail": "Request is still in progress"}, status_code=400)
            return Response(sim._result(job))

        return [queue]
