from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from shared.catalog import CatalogError, load_catalog, load_catalog_paths, parse_catalog
from shared.catalog.params import validate_input
from shared.infra.errors import InvalidInput
from shared.settings import DEFAULT_CATALOG, Settings


def test_shipped_catalog_has_the_promised_models_each_with_a_local_route() -> None:
    catalog = load_catalog(DEFAULT_CATALOG)
    ids = {model.id for model in catalog}
    assert {"flux-schnell", "flux-dev", "sdxl", "dreamshaper", "ltx-video"} <= ids
    assert any(i.startswith("llama") for i in ids)
    assert any(i.startswith("qwen") for i in ids)
    assert {"text-embedding-3-small", "bge-large-en-v1.5", "nomic-embed-text-v1.5"} <= ids
    kinds = {model.kind for model in catalog}
    assert kinds == {"image", "video", "text", "embedding", "moderation"}
    for model in catalog:
        assert "local" in [route.provider for route in model.routes], model.id
        if model.kind != "moderation":  # free by default: the operator's policy, run by Conduit itself
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


LAYERED_MODEL = """
[[models]]
id = "my-sketch"
kind = "image"
name = "My sketch model"
parameter_set = "{parameter_set}"
pricing = {{ unit = "image", credits = "0.1" }}
[[models.routes]]
provider = "local"
"""


def test_catalog_path_layers_over_the_shipped_catalog(tmp_path: Path) -> None:
    extra = tmp_path / "extra.toml"
    extra.write_text(LAYERED_MODEL.format(parameter_set="image"))  # a parameter set of the shipped catalog
    settings = Settings.from_env({"CATALOG_PATH": str(extra)})
    assert settings.catalog_paths == (DEFAULT_CATALOG, extra)
    ids = {model.id for model in load_catalog_paths(settings.catalog_paths)}
    assert {"my-sketch", "flux-schnell", "llama-3.1-8b-instruct"} <= ids
    # naming the shipped catalog as well (as older set-ups did) loads it once, first
    both = Settings.from_env({"CATALOG_PATH": os.pathsep.join([str(DEFAULT_CATALOG), str(extra)])})
    assert both.catalog_paths == (DEFAULT_CATALOG, extra)


def test_an_unknown_parameter_set_is_named_with_its_model(tmp_path: Path) -> None:
    extra = tmp_path / "extra.toml"
    extra.write_text(LAYERED_MODEL.format(parameter_set="imgae"))
    with pytest.raises(CatalogError, match=r"\(my-sketch\): unknown parameter_set 'imgae' \(defined: .*image"):
        load_catalog_paths(Settings.from_env({"CATALOG_PATH": str(extra)}).catalog_paths)
