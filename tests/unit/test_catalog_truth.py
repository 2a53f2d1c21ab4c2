"""The catalog checked against itself: every route honours every parameter its model offers (or is fixed at the
model's default), defaults lie within their ranges, and every model has an offline ``local`` route."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from shared.catalog import Catalog, CatalogError, catalog_problems, load_catalog_paths, parse_catalog
from shared.catalog.params import Parameter
from shared.settings import DEFAULT_CATALOG

FIXTURE_CATALOG = Path(__file__).parents[1] / "fixtures" / "catalog.toml"
# Test models that exercise upstream-only behaviour (failures, fallbacks, models no provider can serve): an
# offline route would serve them and hide what the tests look for.
UPSTREAM_ONLY_TEST_MODELS = {
    "test-unroutable", "test-up-chat", "test-up-chat-fallback", "test-up-chat-badkey", "test-up-image-b64",
    "test-up-image-url", "test-up-replicate", "test-up-replicate-slow", "test-up-replicate-never",
    "test-up-replicate-nsfw", "test-up-fal-image", "test-up-fal-slow", "test-up-fal-video", "test-up-fal-video-long",
    "test-up-cross-protocol", "test-up-fixed-size-then-fal", "test-up-nokey",
    # OpenAI API: routing by capability, request-level fallbacks, upstream embeddings
    "test-up-tools", "test-up-split", "test-up-pricey", "test-up-embed",
    "test-up-replicate-edit", "test-up-fal-fill", "test-up-fal-i2v",
}  # fmt: skip


def test_the_shipped_catalog_passes_its_self_check() -> None:
    assert catalog_problems(load_catalog_paths([DEFAULT_CATALOG])) == []


def test_the_test_catalog_passes_except_for_its_upstream_only_models() -> None:
    problems = catalog_problems(load_catalog_paths([DEFAULT_CATALOG, FIXTURE_CATALOG]))
    assert sorted(problems) == sorted(f"{model}: has no local route" for model in UPSTREAM_ONLY_TEST_MODELS)


def test_shipped_defaults_are_the_models_own() -> None:
    catalog = load_catalog_paths([DEFAULT_CATALOG])

    def default(model: str, name: str) -> Any:
        found = catalog.get(model)
        assert found is not None
        parameter = found.parameter(name)
        assert parameter is not None, (model, name)
        return parameter.default

    assert default("flux-schnell", "num_inference_steps") == 4
    assert default("flux-dev", "num_inference_steps") == 28
    assert default("sdxl", "num_inference_steps") == 30
    assert default("ltx-video", "fps") == 24


def _image_model(*routes: dict[str, Any], parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "providers": {"up": {"protocol": "fal", "api_key_env": "UP_KEY"}},
        "models": [{
            "id": "m", "kind": "image", "pricing": {"unit": "image", "credits": "1"},
            "parameters": parameters or [
                {"name": "prompt", "type": "string", "required": True},
                {"name": "width", "type": "integer", "minimum": 256, "maximum": 2048, "default": 1024},
            ],
            "routes": list(routes),
        }],
    }  # fmt: skip


LOCAL = {"provider": "local", "model": "image"}


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ({"provider": "up", "model": "x", "params": {"prompt": "prompt"}}, "does not honour 'width'"),
        ({"provider": "up", "model": "x"}, "takes no parameter 'width' by that name"),
        ({"provider": "up", "model": "x", "params": {"prompt": "p", "width": {"fixed": 768}}}, "default is 1024"),
        ({"provider": "up", "model": "x", "params": {"prompt": "p", "width": "w", "seed": "s"}}, "does not offer"),
        (
            {"provider": "up", "model": "x", "params": {"prompt": "p", "width": "w"}, "extra": {"w": 1}},
            "both from a parameter and in extra",
        ),
    ],
)
def test_a_route_that_does_not_honour_what_its_model_offers_is_refused(route: dict[str, Any], message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        parse_catalog(_image_model(route, LOCAL))


def test_a_route_fixed_at_the_default_loads_and_says_so() -> None:
    fixed = {"provider": "up", "model": "x", "params": {"prompt": "prompt", "width": {"fixed": 1024}}}
    catalog = parse_catalog(_image_model(fixed, LOCAL))
    assert catalog_problems(catalog) == []
    model = catalog.get("m")
    assert model is not None
    assert model.routes[0].refuses({"prompt": "a", "width": 1024}) is None
    assert model.routes[0].refuses({"prompt": "a", "width": 512}) == "width"


def test_the_self_check_finds_a_default_outside_its_range_and_a_missing_local_route() -> None:
    catalog = parse_catalog(_image_model({"provider": "up", "model": "x", "params": {"prompt": "p", "width": "w"}}))
    model = catalog.get("m")
    assert model is not None
    # A default outside its range cannot be loaded; one built in code is still caught by the self-check.
    outside = Parameter(name="steps", type="integer", minimum=1, maximum=4, default=28)
    broken_model = dataclasses.replace(model, parameters=(*model.parameters, outside))
    broken = Catalog([broken_model], version=1, providers=catalog.providers)
    problems = catalog_problems(broken)
    assert "m: has no local route" in problems
    assert any("default of 'steps' is invalid" in problem for problem in problems)
    with pytest.raises(CatalogError, match="default of 'steps' is invalid"):
        parse_catalog(
            _image_model(LOCAL, parameters=[{"name": "steps", "type": "integer", "maximum": 4, "default": 28}])
        )
