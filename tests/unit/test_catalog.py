from __future__ import annotations

from typing import Any

import pytest

from shared.catalog import CatalogError, load_catalog, parse_catalog
from shared.catalog.params import validate_input
from shared.infra.errors import InvalidInput
from shared.settings import DEFAULT_CATALOG


def test_shipped_catalog_has_the_promised_models_each_with_a_local_route() -> None:
    catalog = load_catalog(DEFAULT_CATALOG)
    ids = {model.id for model in catalog}
    assert {"flux-schnell", "flux-dev", "sdxl", "dreamshaper", "ltx-video"} <= ids
    assert any(i.startswith("llama") for i in ids)
    assert any(i.startswith("qwen") for i in ids)
    assert {"text-embedding-3-small", "bge-large-en-v1.5", "nomic-embed-text-v1.5"} <= ids
    kinds = {model.kind for model in catalog}
    assert kinds == {"image", "video", "text", "embedding"}
    for model in catalog:
        assert "local" in [route.provider for route in model.routes], model.id
        assert model.pricing.per_unit or model.pricing.input_per_million, model.id


def _catalog(**overrides: Any) -> dict[str, Any]:
    model = {
        "id": "m",
        "kind": "image",
        "pricing": {"unit": "image", "credits": "1"},
        "parameters": [{"name": "prompt", "type": "string", "required": True}],
        "routes": [{"provider": "local", "model": "image"}],
    }
    model.update(overrides)
    return {"models": [model]}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kind": "audio"}, "kind must be one of"),
        ({"pricing": {"unit": "image", "credits": "0.1234567"}}, "6 decimal places"),
        ({"pricing": {"unit": "token", "input": "1", "output": "1"}}, "token pricing only applies to text"),
        ({"pricing": {"unit": "furlong", "credits": "1"}}, "pricing.unit"),
        ({"routes": []}, "no routes"),
        ({"parameters": [{"name": "n", "type": "integer", "minimum": 1, "default": 0}]}, "default of 'n' is invalid"),
        ({"parameters": [{"name": "n", "type": "integer", "maxx": 1}]}, "unknown keys"),
        ({"routes": [{"provider": "local", "model": "image", "drop": ["prompt"]}]}, "'drop' is no longer read"),
    ],
)
def test_bad_catalog_entries_are_refused_at_load(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        parse_catalog(_catalog(**overrides))


def test_validation_applies_defaults_and_names_the_parameter() -> None:
    model = load_catalog(DEFAULT_CATALOG).get("flux-schnell")
    assert model is not None
    params = validate_input(model.parameters, {"prompt": "hi", "width": 512})
    assert params["width"] == 512
    assert params["height"] == 1024
    assert params["num_images"] == 1
    assert "seed" not in params
    with pytest.raises(InvalidInput) as excinfo:
        validate_input(model.parameters, {"prompt": "hi", "height": 1441})
    assert excinfo.value.param == "input.height"
    assert params["num_inference_steps"] == 4  # schnell's own default, not another model's
    assert validate_input(model.parameters, {"prompt": "hi", "num_images": 2.0})["num_images"] == 2
    with pytest.raises(InvalidInput) as unknown:  # schnell takes no guidance scale: not offered, not ignored
        validate_input(model.parameters, {"prompt": "hi", "guidance_scale": 2})
    assert unknown.value.param == "input.guidance_scale"
