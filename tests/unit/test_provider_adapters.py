"""The adapters' pure request builders and response parsers, against payloads recorded from the providers'
API documentation, and their I/O against httpx ``MockTransport`` (errors classified, bodies never leaked)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from shared.catalog import Model, Route
from shared.catalog.pricing import Pricing, Usage
from shared.catalog.providers import ProviderSpec
from shared.catalog.routes import ParamMapping
from shared.providers import fal, openai_protocol, replicate
from shared.providers.base import (
    Completed,
    GenerationRequest,
    PermanentError,
    RetryableError,
    RouteError,
    Running,
    Submitted,
)
from shared.providers.http import classify_status, parse_retry_after
from shared.providers.params import upstream_input
from shared.providers.upstream_client import UpstreamClient
from tests.simulators.base import payload

PNG_1PX = base64.b64decode(payload("openai_image_b64")["data"][0]["b64_json"])


def model(kind: str) -> Model:
    unit = {"text": "token", "image": "image", "video": "video_second"}[kind]
    return Model(id=f"m-{kind}", kind=kind, name="m", owned_by="t", created=0, description="",
                 pricing=Pricing(unit=unit), parameters=(), routes=(), max_runtime_s=60)  # fmt: skip


def request(kind: str, route: Route, params: dict[str, Any]) -> GenerationRequest:
    return GenerationRequest(task_id=uuid.uuid4(), model=model(kind), route=route, params=params)


def provider_with(
    cls: Any, protocol: str, handler: Callable[[httpx.Request], httpx.Response], base_url: str = "https://up.example/v1"
) -> Any:
    spec = ProviderSpec(name="up", protocol=protocol, base_url=base_url, api_key_env="UP_API_KEY")
    resolved = spec.resolve({"UP_API_KEY": "secret-key"})
    return cls(resolved, UpstreamClient(transport=httpx.MockTransport(handler), user_agent="conduit-test"))


# -- parameters ----------------------------------------------------------------------------------------------


def mapped(**mappings: str | ParamMapping) -> dict[str, ParamMapping]:
    return {name: ParamMapping(to=m) if isinstance(m, str) else m for name, m in mappings.items()}


def test_route_params_map_parameters_onto_the_upstream_input() -> None:
    size = "{width}x{height}"
    route = Route("r", "m", {"extra": {"output_format": "png"}}, mapped(
        prompt="prompt", guidance_scale="guidance", width=ParamMapping(fixed=1024), height=ParamMapping(fixed=1024),
    ))  # fmt: skip
    params = {"prompt": "p", "width": 1024, "height": 1024, "guidance_scale": 3.5}
    assert route.refuses(params) is None
    assert upstream_input(route, params) == {"prompt": "p", "guidance": 3.5, "output_format": "png"}
    assert route.refuses({**params, "width": 768}) == "width"  # the route only makes 1024
    assert route.refuses({**params, "seed": 1}) == "seed"  # not taken at all

    nested = Route("r", "m", {}, mapped(width="image_size.width", height="image_size.height"))
    assert upstream_input(nested, {"width": 512, "height": 256}) == {"image_size": {"width": 512, "height": 256}}
    joined = Route("r", "m", {}, mapped(width=ParamMapping(to="size", format=size),
                                        height=ParamMapping(to="size", format=size)))  # fmt: skip
    assert upstream_input(joined, {"width": 512, "height": 256}) == {"size": "512x256"}
    frames = Route("r", "m", {}, mapped(fps="fps", duration_s=ParamMapping(to="num_frames", frames_at="fps", add=1)))
    assert upstream_input(frames, {"duration_s": 5, "fps": 24}) == {"fps": 24, "num_frames": 121}


# -- OpenAI-compatible -------------------------------------------------------------------------------------


def test_openai_chat_response_gives_text_and_token_usage() -> None:
    result = openai_protocol.parse_chat_response("up", payload("openai_chat_completion"), {"messages": []})
    assert (result.outputs[0].text or "").startswith("The image shows a wooden boardwalk")
    assert result.usage == Usage(input_tokens=1117, output_tokens=46)


def test_openai_chat_refusal_and_missing_usage() -> None:
    filtered = payload("openai_chat_completion")
    filtered["choices"][0].update(finish_reason="content_filter", message={"role": "assistant", "content": None})
    with pytest.raises(PermanentError) as refused:
        openai_protocol.parse_chat_response("up", filtered, {})
    assert refused.value.code == "content_policy_violation"

    no_usage = payload("openai_chat_completion")
    del no_usage["usage"]
    estimated = openai_protocol.parse_chat_response("up", no_usage, {"messages": [{"role": "user", "content": "a b"}]})
    assert estimated.usage.input_tokens > 0 and estimated.usage.output_tokens > 0

    with pytest.raises(RetryableError) as malformed:
        openai_protocol.parse_chat_response("up", {"choices": []}, {})
    assert malformed.value.code == "upstream_bad_response"


def test_openai_image_responses_in_base64_and_as_urls() -> None:
    b64 = openai_protocol.parse_image_response("up", payload("openai_image_b64"))
    assert [o.data for o in b64.outputs] == [PNG_1PX] and b64.usage == Usage(images=1)
    urls = openai_protocol.parse_image_response("up", payload("openai_image_url"))
    assert [o.url for o in urls.outputs] == [item["url"] for item in payload("openai_image_url")["data"]]
    with pytest.raises(RetryableError):
        openai_protocol.parse_image_response("up", {"data": [{"b64_json": "not base64!"}]})


def test_openai_image_request_asks_for_b64_by_default() -> None:
    size = ParamMapping(to="size", format="{width}x{height}")
    route = Route("up", "dall-e-3", {}, mapped(prompt="prompt", width=size, height=size, num_images="n"))
    body = openai_protocol.build_image_request(route, {"prompt": "p", "width": 1024, "height": 768, "num_images": 2})
    assert body == {"model": "dall-e-3", "response_format": "b64_json", "prompt": "p", "n": 2, "size": "1024x768"}


async def test_openai_provider_sends_the_key_and_classifies_errors() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json=payload("openai_chat_completion"))

    provider = provider_with(openai_protocol.OpenAICompatProvider, "openai", handler)
    params = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    result = await provider.start(request("text", Route("up", "llama", {}), params))
    assert isinstance(result, Completed)
    assert str(seen[0].url) == "https://up.example/v1/chat/completions"
    assert seen[0].headers["authorization"] == "Bearer secret-key"
    assert json.loads(seen[0].content)["max_tokens"] == 5

    def refusing(req: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json=payload("openai_error_invalid"))

    provider = provider_with(openai_protocol.OpenAICompatProvider, "openai", refusing)
    with pytest.raises(PermanentError) as error:
        await provider.start(request("text", Route("up", "llama", {}), params))
    assert error.value.code == "upstream_invalid_request"
    assert "internal-trace" not in error.value.message and "size" not in error.value.message

    def down(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=req)

    provider = provider_with(openai_protocol.OpenAICompatProvider, "openai", down)
    with pytest.raises(RetryableError) as unreachable:
        await provider.start(request("text", Route("up", "llama", {}), params))
    assert unreachable.value.code == "upstream_unreachable"


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind", "code"),
    [
        (429, {}, {"Retry-After": "3"}, RetryableError, "upstream_rate_limited"),
        (500, {}, {}, RetryableError, "upstream_unavailable"),
        (502, {}, {}, RetryableError, "upstream_unavailable"),
        (503, {}, {}, RetryableError, "upstream_unavailable"),
        (504, {}, {}, RetryableError, "upstream_timeout"),
        (401, {}, {}, RouteError, "upstream_auth_failed"),
        (403, {}, {}, RouteError, "upstream_auth_failed"),
        (404, {}, {}, RouteError, "upstream_not_found"),
        (400, payload("openai_error_content_policy"), {}, PermanentError, "content_policy_violation"),
        (400, payload("openai_error_invalid"), {}, PermanentError, "upstream_invalid_request"),
        (422, payload("replicate_error_invalid"), {}, PermanentError, "upstream_invalid_request"),
        (409, {}, {}, PermanentError, "upstream_rejected"),
    ],
)
def test_http_statuses_are_classified(status: int, body: Any, headers: dict[str, str], kind: type, code: str) -> None:
    error = classify_status("up", status, httpx.Headers(headers), body)
    assert type(error) is kind and error.code == code
    if status == 429:
        assert error.retry_after_s == 3


def test_retry_after_in_seconds_milliseconds_and_http_dates() -> None:
    assert parse_retry_after(httpx.Headers({"Retry-After": "7"})) == 7
    assert parse_retry_after(httpx.Headers({"retry-after-ms": "1500"})) == 1.5
    assert parse_retry_after(httpx.Headers({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), now=1445412470) == 10
    assert parse_retry_after(httpx.Headers({})) is None


# -- Replicate ---------------------------------------------------------------------------------------------


def test_replicate_create_request_for_official_and_versioned_models() -> None:
    params = {"prompt": "p", "num_images": 2, "width": 768, "height": 768}
    taken = mapped(prompt="prompt", num_images="num_outputs", width="width", height="height")
    path, body = replicate.build_prediction_request(Route("r", "black-forest-labs/flux-schnell", {}, taken), params)
    assert path == "/v1/models/black-forest-labs/flux-schnell/predictions"
    assert body == {"input": {"prompt": "p", "num_outputs": 2, "width": 768, "height": 768}}
    path, body = replicate.build_prediction_request(Route("r", "stability-ai/sdxl", {"version": "abc"}, taken), params)
    assert path == "/v1/predictions" and body["version"] == "abc"


def test_replicate_prediction_statuses() -> None:
    starting = replicate.parse_prediction("r", payload("replicate_prediction_starting"), "image")
    assert starting == Running(progress={"upstream_status": "starting"})
    processing = replicate.parse_prediction("r", payload("replicate_prediction_processing"), "image")
    lines = ["Using seed: 1529", "running quantized prediction", "25%|██▌       | 1/4 [00:00<00:00,  4.12it/s]",
             "50%|█████     | 2/4 [00:00<00:00,  4.17it/s]"]  # fmt: skip
    assert processing == Running(progress={"upstream_status": "processing", "percent": 50, "logs": lines})
    done = replicate.parse_prediction("r", payload("replicate_prediction_succeeded"), "image")
    assert isinstance(done, Completed)
    assert [o.url for o in done.outputs] == payload("replicate_prediction_succeeded")["output"]
    assert done.usage == Usage(images=1, upstream_seconds=1.017)
    with pytest.raises(PermanentError) as nsfw:
        replicate.parse_prediction("r", payload("replicate_prediction_failed"), "image")
    assert nsfw.value.code == "content_policy_violation" and "NSFW" not in nsfw.value.message
    failed = {**payload("replicate_prediction_failed"), "error": "CUDA out of memory"}
    with pytest.raises(PermanentError) as error:
        replicate.parse_prediction("r", failed, "image")
    assert error.value.code == "upstream_failed"
    with pytest.raises(PermanentError, match="canceled"):
        replicate.parse_prediction("r", {**payload("replicate_prediction_starting"), "status": "canceled"}, "image")


async def test_replicate_provider_submits_polls_and_cancels_by_id() -> None:
    seen: list[tuple[str, str]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append((req.method, req.url.path))
        if req.url.path.endswith("/cancel"):
            return httpx.Response(200, json={**payload("replicate_prediction_starting"), "status": "canceled"})
        if req.method == "POST":
            return httpx.Response(201, json=payload("replicate_prediction_starting"))
        return httpx.Response(200, json=payload("replicate_prediction_succeeded"))

    provider = provider_with(replicate.ReplicateProvider, "replicate", handler, "https://api.replicate.example")
    req = request("image", Route("r", "black-forest-labs/flux-schnell", {}), {"prompt": "p"})
    submitted = await provider.start(req)
    assert submitted == Submitted(upstream_id="gm3qorzdhgbfurvjtvhg6dckhu", progress={"upstream_status": "starting"})
    assert isinstance(await provider.poll(req, submitted.upstream_id), Completed)
    await provider.cancel(req, submitted.upstream_id)
    assert seen == [
        ("POST", "/v1/models/black-forest-labs/flux-schnell/predictions"),
        ("GET", "/v1/predictions/gm3qorzdhgbfurvjtvhg6dckhu"),
        ("POST", "/v1/predictions/gm3qorzdhgbfurvjtvhg6dckhu/cancel"),
    ]


def test_replicate_ids_that_could_escape_the_url_are_refused() -> None:
    with pytest.raises(RetryableError):
        replicate.prediction_id("r", {"id": "../../v1/account"})


# -- fal ---------------------------------------------------------------------------------------------------


def test_fal_addresses_requests_without_the_model_sub_path() -> None:
    assert fal.app_id("fal-ai/flux/dev") == "fal-ai/flux"
    assert fal.app_id("fal-ai/fast-sdxl") == "fal-ai/fast-sdxl"
    params = {"prompt": "p", "width": 512, "height": 512, "num_images": 1}
    taken = mapped(prompt="prompt", width="image_size.width", height="image_size.height", num_images="num_images")
    path, body = fal.build_submit_request(Route("f", "fal-ai/flux/dev", {}, taken), params)
    assert path == "/fal-ai/flux/dev"
    assert body == {"prompt": "p", "num_images": 1, "image_size": {"width": 512, "height": 512}}


def test_fal_queue_statuses_and_results() -> None:
    assert fal.request_id("f", payload("fal_submit")) == "80e732af-660e-45cd-bd63-580e4f2a94cc"
    assert fal.progress_of(payload("fal_submit")) == {"upstream_status": "IN_QUEUE", "queue_position": 3}
    assert fal.parse_status("f", payload("fal_status_in_queue")) == Running(
        progress={"upstream_status": "IN_QUEUE", "queue_position": 2}
    )
    assert fal.parse_status("f", payload("fal_status_in_progress")) == Running(
        progress={"upstream_status": "IN_PROGRESS", "logs": ["Loading model"]}
    )
    assert fal.parse_status("f", payload("fal_status_completed")) is None
    images = fal.parse_result("f", payload("fal_result_images"), "image")
    assert [o.url for o in images.outputs] == [payload("fal_result_images")["images"][0]["url"]]
    assert images.usage == Usage(images=1)
    video = fal.parse_result("f", payload("fal_result_video"), "video")
    assert video.outputs[0].type == "video" and (video.outputs[0].url or "").endswith("output.mp4")


def test_fal_images_flagged_nsfw_are_not_delivered() -> None:
    result = payload("fal_result_images")
    result["images"] = result["images"] * 2
    result["has_nsfw_concepts"] = [True, False]
    assert len(fal.parse_result("f", result, "image").outputs) == 1
    result["has_nsfw_concepts"] = [True, True]
    with pytest.raises(PermanentError) as refused:
        fal.parse_result("f", result, "image")
    assert refused.value.code == "content_policy_violation"


async def test_fal_provider_uses_key_auth_and_the_queue_urls() -> None:
    seen: list[tuple[str, str, str]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append((req.method, req.url.path, req.headers["authorization"]))
        if req.method == "POST":
            return httpx.Response(200, json=payload("fal_submit"))
        if req.method == "PUT":
            return httpx.Response(400, json={"status": "ALREADY_COMPLETED"})
        if req.url.path.endswith("/status"):
            return httpx.Response(200, json=payload("fal_status_completed"))
        return httpx.Response(200, json=payload("fal_result_images"))

    provider = provider_with(fal.FalProvider, "fal", handler, "https://queue.fal.example")
    req = request("image", Route("f", "fal-ai/flux/dev", {}), {"prompt": "p"})
    submitted = await provider.start(req)
    result = await provider.poll(req, submitted.upstream_id)
    assert isinstance(result, Completed)
    await provider.cancel(req, submitted.upstream_id)  # already completed: not an error
    rid = submitted.upstream_id
    assert seen == [
        ("POST", "/fal-ai/flux/dev", "Key secret-key"),
        ("GET", f"/fal-ai/flux/requests/{rid}/status", "Key secret-key"),
        ("GET", f"/fal-ai/flux/requests/{rid}", "Key secret-key"),
        ("PUT", f"/fal-ai/flux/requests/{rid}/cancel", "Key secret-key"),
    ]
