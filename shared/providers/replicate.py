"""Replicate predictions.

* create: ``POST {base}/v1/models/{owner}/{name}/predictions`` ``{"input": {...}}`` (official models), or
  ``POST {base}/v1/predictions`` ``{"version": ..., "input": {...}}`` when the route names a ``version``;
* poll: ``GET {base}/v1/predictions/{id}`` (the prediction's ``urls.get``), statuses
  ``starting | processing | succeeded | failed | canceled``;
* cancel: ``POST {base}/v1/predictions/{id}/cancel`` (its ``urls.cancel``).

Output is a URL or a list of URLs (they expire after an hour: the runner copies them into our storage);
``metrics.predict_time`` is recorded with the usage. Only the prediction id is saved on the task: the
poll and cancel URLs are derived from it, so a redelivered job needs nothing else to resume.
"""

from __future__ import annotations

import re
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

ACTIVE = ("starting", "processing")
_PERCENT = re.compile(r"(\d{1,3})%\|")


# -- pure request builders and response parsers ---------------------------------------------------------


def build_prediction_request(route: Route, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(path, body) of the create call."""
    model_input = upstream_input(route, params)
    version = route.options.get("version")
    if version:
        return "/v1/predictions", {"version": str(version), "input": model_input}
    return f"/v1/models/{route.upstream_model}/predictions", {"input": model_input}


def prediction_id(provider: str, data: Any) -> str:
    return job_id(provider, data, "id")


def progress_of(data: dict[str, Any]) -> dict[str, Any]:
    """The status, the percentage of the last progress bar in the logs, and the log lines so far (``logs``)."""
    progress: dict[str, Any] = {"upstream_status": data.get("status")}
    logs = data.get("logs")
    if isinstance(logs, str):
        found = _PERCENT.findall(logs[-2000:])
        if found:
            progress["percent"] = min(100, int(found[-1]))
        lines = [line.strip() for line in logs.replace("\r", "\n").split("\n") if line.strip()]
        if lines:
            progress["logs"] = lines
    return progress


def output_urls(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    if isinstance(value, dict):
        return [item for item in value.values() if isinstance(item, str) and "://" in item]
    return []


def parse_prediction(provider: str, data: Any, kind: str) -> Completed | Running:
    if not isinstance(data, dict):
        raise malformed(provider, "a prediction object")
    status = data.get("status")
    if status in ACTIVE:
        return Running(progress=progress_of(data))
    if status == "succeeded":
        urls = output_urls(data.get("output"))
        if not urls:
            raise malformed(provider, "output URLs")
        outputs = [Output(type=kind, url=url) for url in urls]
        metrics = data.get("metrics")
        predict_time = metrics.get("predict_time") if isinstance(metrics, dict) else None
        usage = Usage(
            images=len(outputs) if kind == "image" else 0,
            upstream_seconds=float(predict_time) if isinstance(predict_time, int | float) else 0.0,
        )
        return Completed(outputs=outputs, usage=usage)
    if status == "failed":
        if mentions_content_policy(data.get("error") or ""):
            raise PermanentError(
                f"{provider} refused the request under its content policy", code="content_policy_violation"
            )
        raise PermanentError(f"{provider} could not complete the prediction", code="upstream_failed")
    if status == "canceled":
        raise PermanentError(f"the prediction was canceled at {provider}", code="upstream_canceled")
    raise malformed(provider, "a known prediction status")


# -- I/O ------------------------------------------------------------------------------------------------


class ReplicateProvider(HttpProvider):
    async def start(self, request: GenerationRequest) -> Completed | Submitted:
        path, body = build_prediction_request(request.route, request.params)
        data = await self._call("POST", path, body)
        upstream_id = prediction_id(self.name, data)
        result = parse_prediction(self.name, data, request.model.kind)
        if isinstance(result, Completed):
            return result
        return Submitted(upstream_id=upstream_id, progress=result.progress)

    async def poll(self, request: GenerationRequest, upstream_id: str) -> Completed | Running:
        data = await self._call("GET", f"/v1/predictions/{upstream_id}")
        return parse_prediction(self.name, data, request.model.kind)

    async def cancel(self, request: GenerationRequest, upstream_id: str) -> None:
        await self._call_ignoring_refusal("POST", f"/v1/predictions/{upstream_id}/cancel")
