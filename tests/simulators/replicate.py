"""Replicate's predictions API: create (``POST /v1/models/{owner}/{name}/predictions`` or
``POST /v1/predictions`` with a version), get (``GET /v1/predictions/{id}``), cancel
(``POST /v1/predictions/{id}/cancel``); statuses ``starting → processing → succeeded | failed | canceled``.

How a prediction goes is decided by its model name: ``…/never`` never finishes, ``…/nsfw`` fails with
Replicate's NSFW error, anything else succeeds ``finish_after_s`` after it was created (``…/slow``: 6 s).
"""

from __future__ import annotations

import copy
import math
import secrets
import string
import time
from dataclasses import dataclass, field
from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath

from tests.simulators.base import Simulator, payload
from tests.simulators.media import png

_ALPHABET = string.ascii_lowercase + string.digits
FILE_INPUTS = ("image", "input_image", "mask")  # inputs Replicate's models take as file URIs


@dataclass
class Prediction:
    id: str
    model: str
    input: dict[str, Any]
    created: float
    canceled: bool = False
    outputs: list[str] = field(default_factory=list)


class ReplicateSimulator(Simulator):
    name = "replicate"

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.predictions: dict[str, Prediction] = {}

    @property
    def base_url(self) -> str:
        return self.origin

    def reset_state(self) -> None:
        self.predictions.clear()

    def _size(self, model_input: dict[str, Any]) -> tuple[int, int]:
        if "width" in model_input and "height" in model_input:
            return int(model_input["width"]), int(model_input["height"])
        w, h = (int(part) for part in str(model_input.get("aspect_ratio", "1:1")).split(":"))
        return 1024, max(16, round(1024 * h / w / 16) * 16)  # 1024x1024 at 1:1, as FLUX on Replicate

    def render(self, prediction: Prediction) -> dict[str, Any]:
        elapsed = time.monotonic() - prediction.created
        duration = self.job_duration(prediction.model)
        body = copy.deepcopy(payload("replicate_prediction_starting"))
        body.update(id=prediction.id, model=prediction.model, input=prediction.input)
        body["urls"] = {
            "get": f"{self.origin}/v1/predictions/{prediction.id}",
            "cancel": f"{self.origin}/v1/predictions/{prediction.id}/cancel",
        }
        if prediction.canceled:
            body.update(status="canceled")
        elif prediction.model.endswith("/nsfw") and elapsed > 0.2:
            failed = payload("replicate_prediction_failed")
            body.update(status="failed", error=failed["error"], metrics=failed["metrics"])
        elif elapsed >= duration:
            if not prediction.outputs:
                width, height = self._size(prediction.input)
                for index in range(int(prediction.input.get("num_outputs", 1))):
                    name = f"{prediction.id}-{index}.png"
                    prediction.outputs.append(self.host_file(name, png(width, height, seed=index), "image/png"))
            done = payload("replicate_prediction_succeeded")
            body.update(status="succeeded", output=prediction.outputs, metrics=done["metrics"], logs=done["logs"])
        elif elapsed > 0.1:
            # as Replicate's logs grow: the seed line, then a progress bar line per step done (of 4)
            steps = 0 if math.isinf(duration) else min(3, int(4 * elapsed / duration))
            bars = "".join(f" {25 * step}%|{'#' * step * 2:<10}| {step}/4\n" for step in range(1, steps + 1))
            body.update(status="processing", logs=f"Using seed: 1529\n{bars}")
        return body

    def handlers(self) -> list[Any]:
        sim = self

        async def create(request: Request[Any, Any, Any], model: str) -> Response[Any]:
            if (early := await sim.enter("create", request)) is not None:
                return early
            body = await request.json()
            if not isinstance(body.get("input"), dict):
                return Response(payload("replicate_error_invalid"), status_code=422)
            problem = await sim.take_file_inputs(body["input"], FILE_INPUTS)
            if problem is not None:
                return Response({"detail": f"- input: {problem}", "status": 422, "title": "Input validation failed"},
                                status_code=422)  # fmt: skip
            prediction_id = "".join(secrets.choice(_ALPHABET) for _ in range(26))
            prediction = Prediction(prediction_id, model, body["input"], time.monotonic())
            sim.predictions[prediction_id] = prediction
            return Response(sim.render(prediction), status_code=201)

        @post("/v1/models/{owner:str}/{name:str}/predictions", status_code=201)
        async def create_official(
            request: Request[Any, Any, Any], owner: FromPath[str], name: FromPath[str]
        ) -> Response[Any]:
            return await create(request, f"{owner}/{name}")

        @post("/v1/predictions", status_code=201)
        async def create_version(request: Request[Any, Any, Any]) -> Response[Any]:
            return await create(request, "versioned/model")

        @get("/v1/predictions/{prediction_id:str}")
        async def get_prediction(request: Request[Any, Any, Any], prediction_id: FromPath[str]) -> Response[Any]:
            if (early := await sim.enter("get", request)) is not None:
                return early
            prediction = sim.predictions.get(prediction_id)
            if prediction is None:
                return Response({"detail": "Not found."}, status_code=404)
            return Response(sim.render(prediction))

        @post("/v1/predictions/{prediction_id:str}/cancel", status_code=200)
        async def cancel(request: Request[Any, Any, Any], prediction_id: FromPath[str]) -> Response[Any]:
            if (early := await sim.enter("cancel", request)) is not None:
                return early
            prediction = sim.predictions.get(prediction_id)
            if prediction is None:
                return Response({"detail": "Not found."}, status_code=404)
            prediction.canceled = True
            return Response(sim.render(prediction))

        return [create_official, create_version, get_prediction, cancel]
