"""fal.ai queue.

* submit: ``POST {base}/{model id}`` with the model's input as the body ->
  ``{request_id, response_url, status_url, cancel_url, queue_position?}``;
* status: ``GET {base}/{app}/requests/{id}/status?logs=1`` -> ``IN_QUEUE`` (with ``queue_position``) |
  ``IN_PROGRESS`` | ``COMPLETED``, with the request's ``logs`` so far;
* result: ``GET {base}/{app}/requests/{id}`` -> ``{"images": [{url, width, height, content_type}]}`` or
  ``{"video": {url, content_type}}``;
* cancel: ``PUT {base}/{app}/requests/{id}/cancel``.

``{app}`` is the model id without its sub-path (``fal-ai/flux/dev`` -> ``fal-ai/flux``), as fal's queue
addresses requests. Only the request id is saved on the task; the URLs are derived from it and the route.
"""

from __future__ import annotations

from typing import Any

from shared.catalog import Route
from shared.catalog.pricing import Usage
from shared.providers.base import (
    Completed,
    GenerationRequest,
    Output,
    PermanentError,
    Running,
    Submitted,
)
from shared.providers.http import HttpProvider, job_id, malformed, mentions_content_policy
from shared.providers.params import upstream_input

ACTIVE = ("IN_QUEUE", "IN_PROGRESS")


# -- pure request builders and response parsers ---------------------------------------------------------


def app_id(model: str) -> str:
    """The queue's address of a model: its first two path segments."""
    return "/".join(model.strip("/").split("/")[:2])


def build_submit_request(route: Route, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(path, body) of the submit call."""
    return f"/{route.upstream_model.strip('/')}", upstream_input(route, params)


def request_id(provider: str, data: Any) -> str:
    return job_id(provider, data, "request_id")


def progress_of(data: dict[str, Any]) -> dict[str, Any]:
    """The status, the queue position while queued, and the log messages so far (``logs``; the status call
    asks for them with ``?logs=1``)."""
    progress: dict[str, Any] = {"upstream_status": data.get("status", "IN_QUEUE")}
    if isinstance(data.get("queue_position"), int):
        progress["queue_position"] = data["queue_position"]
    logs = data.get("logs")
    if isinstance(logs, list):
        lines = [
            entry["message"] for entry in logs if isinstance(entry, dict) and isinstance(entry.get("message"), str)
        ]
        if lines:
            progress["logs"] = lines
    return progress


def parse_status(provider: str, data: Any) -> Running | None:
    """Running while queued or in progress; None once completed (fetch the result next)."""
    if not isinstance(data, dict):
        raise malformed(provider, "a status object")
    status = data.get("status")
    if status in ACTIVE:
        return Running(progress=progress_of(data))
    if status == "COMPLETED":
        error = data.get("error")
        if error:
            if mentions_content_policy({"error": error, "error_type": data.get("error_type")}):
                raise PermanentError(
                    f"{provider} refused the request under its content policy", code="content_policy_violation"
                )
            raise PermanentError(f"{provider} could not complete the request", code="upstream_failed")
        return None
    raise malformed(provider, "a known queue status")


def parse_result(provider: str, data: Any, kind: str) -> Completed:
    if not isinstance(data, dict):
        raise malformed(provider, "a result object")
    outputs: list[Output] = []
    if kind == "image":
        images = data.get("images")
        if not isinstance(images, list) or not images:
            raise malformed(provider, "images")
        flagged = data.get("has_nsfw_concepts")
        flags = flagged if isinstance(flagged, list) and len(flagged) == len(images) else [False] * len(images)
        for image, nsfw in zip(images, flags, strict=True):
            if not isinstance(image, dict) or not isinstance(image.get("url"), str):
                raise malformed(provider, "images[].url")
            if nsfw is True:
                continue  # fal blacks these out; they are not delivered or charged
            outputs.append(Output(type="image", url=image["url"]))
        if not outputs:
            raise PermanentError(
                f"{provider} refused the request under its content policy", code="content_policy_violation"
            )
        return Completed(outputs=outputs, usage=Usage(images=len(outputs)))
    video = data.get("video")
    if not isinstance(video, dict) or not isinstance(video.get("url"), str):
        raise malformed(provider, "video.url")
    return Completed(outputs=[Output(type="video", url=video["url"])], usage=Usage())


# -- I/O ------------------------------------------------------------------------------------------------


class FalProvider(HttpProvider):
    auth_scheme = "Key"

    @staticmethod
    def _request_path(request: GenerationRequest, upstream_id: str) -> str:
        return f"/{app_id(request.route.upstream_model)}/requests/{upstream_id}"

    async def start(self, request: GenerationRequest) -> Submitted:
        path, body = build_submit_request(request.route, request.params)
        data = await self._call("POST", path, body)
        return Submitted(upstream_id=request_id(self.name, data), progress=progress_of(data))

    async def poll(self, request: GenerationRequest, upstream_id: str) -> Completed | Running:
        path = self._request_path(request, upstream_id)
        running = parse_status(self.name, await self._call("GET", f"{path}/status?logs=1"))
        if running is not None:
            return running
        return parse_result(self.name, await self._call("GET", path), request.model.kind)

    async def cancel(self, request: GenerationRequest, upstream_id: str) -> None:
        await self._call_ignoring_refusal("PUT", f"{self._request_path(request, upstream_id)}/cancel")
