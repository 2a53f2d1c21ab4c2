"""Every parameter the shipped catalog offers reaches the upstream, mapped as the route says.

Each Replicate and fal route of the shipped catalog is pointed at the simulator of its protocol, which records
the input it receives; a request sets every parameter to a value other than its default (a route that keeps a
parameter fixed gets the default, the only value routed to it) and the recorded input must carry each value
under the route's upstream name, and nothing the route does not send. File parameters arrive as the URL the
simulator fetched (or the data: URI, on a route that sends files inline).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from shared.catalog import Model, Route, load_catalog
from shared.catalog.params import MEDIA_KINDS, Parameter, validate_input
from shared.catalog.providers import ProviderSpec
from shared.providers.base import GenerationRequest, InputFile
from shared.providers.fal import FalProvider
from shared.providers.replicate import ReplicateProvider
from shared.providers.upstream_client import UpstreamClient
from shared.settings import DEFAULT_CATALOG
from tests.simulators import Simulators
from tests.simulators.base import Simulator
from tests.simulators.media import png

CATALOG = load_catalog(DEFAULT_CATALOG)
UPSTREAM_ROUTES = [
    pytest.param(model, route, id=f"{model.id}-{route.provider}")
    for model in CATALOG
    for route in model.routes
    if route.provider in ("replicate", "fal")
]


def other_than_default(parameter: Parameter) -> Any:
    """A valid value that is not the parameter's default."""
    if parameter.type == "image_list":
        return ["https://files.example/a.png", "https://files.example/b.png"]  # replaced by input files
    if parameter.type in MEDIA_KINDS:
        return "https://files.example/input.png"  # replaced by an input file once validated
    if parameter.choices is not None:
        return next((choice for choice in parameter.choices if choice != parameter.default), parameter.default)
    if parameter.type == "string":
        return f"a {parameter.name} for the test"
    if parameter.type == "number":
        high = float(parameter.maximum if parameter.maximum is not None else 9.5)
        return high if high != parameter.default else float(parameter.minimum or 0)
    high = int(parameter.maximum if parameter.maximum is not None else 7)
    high -= high % (parameter.multiple_of or 1)
    return high if high != parameter.default else int(parameter.minimum or 0) + (parameter.multiple_of or 1)


def full_request(model: Model, route: Route) -> dict[str, Any]:
    raw = {}
    for parameter in model.parameters:
        mapping = route.mapping(parameter.name)
        assert mapping is not None, f"{model.id} on {route.provider} does not honour {parameter.name}"
        raw[parameter.name] = parameter.default if mapping.is_fixed else other_than_default(parameter)
    params = validate_input(model.parameters, raw)
    assert route.refuses(params) is None
    return params


def with_input_files(model: Model, params: dict[str, Any], sim: Simulator) -> dict[str, Any]:
    """The request as the worker hands it to an adapter: each file parameter an ``InputFile`` the simulator can
    fetch (as the upstream fetches Conduit's signed URL)."""
    data = png(64, 64)
    files = {}
    for parameter in model.parameters:
        if parameter.type in MEDIA_KINDS and parameter.name in params:
            made = [
                InputFile(key="inputs/x/image.png", content_type="image/png", data=data,
                          url=sim.host_file(f"{uuid.uuid4().hex}.png", data, "image/png"))
                for _ in range(2 if parameter.type == "image_list" else 1)
            ]  # fmt: skip
            files[parameter.name] = made if parameter.type == "image_list" else made[0]
    return {**params, **files}


def sent_form(route: Route, value: Any) -> Any:
    if isinstance(value, list):
        return [sent_form(route, item) for item in value]
    if isinstance(value, InputFile):
        return value.data_uri if route.options.get("inputs") == "data_uri" else value.url
    return value


def at(body: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        assert part in body, f"{path!r} missing from {body}"
        body = body[part]
    return body


@pytest.mark.parametrize(("model", "route"), UPSTREAM_ROUTES)
async def test_every_offered_parameter_arrives_mapped(model: Model, route: Route, sims: Simulators) -> None:
    spec = CATALOG.providers[route.provider]
    sim: Simulator = sims.replicate if spec.protocol == "replicate" else sims.fal
    resolved = ProviderSpec(name=spec.name, protocol=spec.protocol, base_url=sim.origin, api_key_env="SIM_KEY").resolve(
        {"SIM_KEY": sim.key}
    )
    adapter = ReplicateProvider if spec.protocol == "replicate" else FalProvider
    params = with_input_files(model, full_request(model, route), sim)
    async with UpstreamClient(transport=httpx.AsyncHTTPTransport(), user_agent="conduit-test") as http:
        await adapter(resolved, http).start(
            GenerationRequest(task_id=uuid.uuid4(), model=model, route=route, params=params)
        )
    [call] = sims.replicate.calls_to("create") if spec.protocol == "replicate" else sims.fal.calls_to("submit")
    assert all(file == png(64, 64) for file in sim.received_files.values())  # each file could be fetched
    received: dict[str, Any] = call.body["input"] if spec.protocol == "replicate" else call.body
    if route.options.get("version"):
        assert call.body["version"] == route.options["version"]

    sent_to = set()
    for name, value in params.items():
        mapping = route.mapping(name)
        assert mapping is not None
        if mapping.is_fixed:
            continue
        sent_to.add(mapping.to.split(".")[0] if mapping.to else name)
        if mapping.frames_at is not None:
            assert name == "duration_s" and mapping.to == "num_frames"
            assert at(received, "num_frames") == value * params["fps"] + 1, "LTX makes duration x fps + 1 frames"
        else:
            assert at(received, mapping.to or name) == sent_form(route, value), name
    extra = route.options.get("extra") or {}
    assert set(received) == sent_to | set(extra)
    assert {key: received[key] for key in extra} == extra
