"""Capabilities in the catalog, cached-token pricing, the upstream stream's tool-call pieces, the schema-shaped
values of the local provider, and the chat request's field checks."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from shared.catalog import CatalogError, parse_catalog
from shared.catalog.capabilities import Need
from shared.catalog.pricing import Pricing, Usage, cost
from shared.infra.errors import InvalidInput
from shared.openai_api.chat_fields import parse_chat_body
from shared.openai_api.pricing import prompt_bound
from shared.providers.chat_stream import parse_chunk
from shared.providers.embeddings import decode_base64, encode_base64
from shared.providers.schema_instance import schema_instance


def _text_model(**overrides: Any) -> dict[str, Any]:
    model = {
        "id": "m",
        "kind": "text",
        "pricing": {"unit": "token", "input": "1", "output": "2"},
        "parameters": [{"name": "messages", "type": "messages", "required": True},
                       {"name": "max_tokens", "type": "integer", "minimum": 1, "maximum": 1000}],
        "routes": [{"provider": "local", "model": "text"}],
    }  # fmt: skip
    model.update(overrides)
    return {"models": [model]}


def test_capabilities_default_to_nothing_and_max_output_to_the_parameter() -> None:
    model = parse_catalog(_text_model()).get("m")
    assert model is not None
    capabilities = model.capabilities.model
    assert not capabilities.has(Need("tools", "tools")) and capabilities.max_output == 1000
    assert capabilities.has(Need("max_n", "n", 1)) and not capabilities.has(Need("max_n", "n", 2))


def test_a_route_narrows_its_model_s_capabilities() -> None:
    routes = [{"provider": "a", "model": "x", "capabilities": {"tools": False, "max_n": 1}},
              {"provider": "local", "model": "text"}]  # fmt: skip
    model = parse_catalog(_text_model(capabilities={"tools": True, "max_n": 4}, routes=routes)).get("m")
    assert model is not None
    assert model.capabilities.of_route("a", "x").tools is False
    assert model.capabilities.of_route("local", "text").tools is True
    assert model.capabilities.of_route("a", "x").max_n == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"capabilities": {"tool": True}}, "unknown"),
        ({"capabilities": {"tools": "yes"}}, "true or false"),
        ({"capabilities": {"max_n": 0}}, "positive whole number"),
        ({"capabilities": {"max_output": 2000}}, "above the max_tokens parameter"),
        ({"routes": [{"provider": "local", "model": "text", "capabilities": {"tools": True}}]}, "only take"),
        ({"capabilities": {"max_n": 2}, "routes": [{"provider": "local", "model": "text",
                                                    "capabilities": {"max_n": 3}}]}, "only take"),
        ({"kind": "image", "pricing": {"unit": "image", "credits": "1"}, "capabilities": {}}, "no capabilities"),
        ({"kind": "embedding", "parameters": [], "capabilities": {"max_inputs": 2}}, "dimensions"),
        ({"kind": "embedding", "parameters": [], "capabilities": {"dimensions": 8},
          "pricing": {"unit": "request", "credits": "1"}}, "priced per token"),
        ({"pricing": {"unit": "token", "input": "1", "output": "2", "cached_input": "3"}}, "cached input price"),
    ],
)  # fmt: skip
def test_bad_capabilities_and_prices_are_refused_at_load(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        parse_catalog(_text_model(**overrides))


def test_cached_input_tokens_cost_their_own_price() -> None:
    # micro-credits per 1M tokens: 1 credit per 1M input tokens is one micro-credit per token
    pricing = Pricing(unit="token", input_per_million=1_000_000, output_per_million=2_000_000,
                      cached_input_per_million=250_000)  # fmt: skip
    assert cost(pricing, Usage(input_tokens=1000, output_tokens=100, cached_input_tokens=400)) == 600 + 100 + 200
    unpriced = Pricing(unit="token", input_per_million=1_000_000)  # no cached price: cached tokens at the input price
    assert cost(unpriced, Usage(input_tokens=10, cached_input_tokens=5)) == 10


def test_the_prompt_bound_counts_tools_tool_calls_and_images() -> None:
    plain = prompt_bound({"messages": [{"role": "user", "content": "hello"}]})
    tools = [{"type": "function", "function": {"name": "f", "description": "d" * 100}}]
    assert prompt_bound({"messages": [{"role": "user", "content": "hello"}], "tools": tools}) > plain + 100
    image = [{"type": "text", "text": "hello"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,"}}]
    assert prompt_bound({"messages": [{"role": "user", "content": image}]}) == plain + 2048
    assert prompt_bound({"messages": [{"role": "user", "content": "x" * 10_000}]}, max_context=500) == 500


def test_streamed_tool_call_pieces_and_per_choice_deltas_are_parsed() -> None:
    chunk = {"choices": [
        {"index": 0, "delta": {"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]},
         "finish_reason": None},
        {"index": 1, "delta": {"content": "hi"}, "logprobs": {"content": []}, "finish_reason": None},
    ]}  # fmt: skip
    first, second = parse_chunk("p", json.dumps(chunk))
    assert first.index == 0 and first.tool_calls is not None and first.tool_calls[0]["id"] == "call_1"
    assert (second.index, second.text, second.logprobs) == (1, "hi", {"content": []})
    usage = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2,
                                      "prompt_tokens_details": {"cached_tokens": 3}}}  # fmt: skip
    [last] = parse_chunk("p", json.dumps(usage))
    assert last.usage is not None and last.usage.cached_input_tokens == 3
    assert last.usage_details == {"prompt_tokens_details": {"cached_tokens": 3}}


def test_schema_instances_match_types_required_fields_and_refs() -> None:
    schema = {
        "$defs": {"Unit": {"type": "string", "enum": ["c", "f"]}},
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 3, "maximum": 5},
                       "unit": {"$ref": "#/$defs/Unit"}, "hourly": {"type": "array", "items": {"type": "number"}},
                       "note": {"anyOf": [{"type": "null"}, {"type": "string"}]}},
        "required": ["city", "days", "unit", "hourly", "note"],
    }  # fmt: skip
    value = schema_instance(schema, ["Paris"], random.Random(1))
    assert value["city"] == "Paris" and 3 <= value["days"] <= 5 and value["unit"] == "c"
    assert isinstance(value["hourly"][0], float) and isinstance(value["note"], str)


def test_base64_embeddings_round_trip_as_float32() -> None:
    assert decode_base64(encode_base64([0.5, -1.0, 0.25])) == [0.5, -1.0, 0.25]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "model"),
        ({"model": "m", "messages": [], "n": "2"}, "n"),
        ({"model": "m", "messages": [], "stop": ""}, "stop"),
        ({"model": "m", "messages": [], "logit_bias": {"abc": 1}}, "logit_bias.abc"),
        ({"model": "m", "messages": [], "tools": [{"type": "function", "function": {"name": "a b"}}]},
         "tools[0].function.name"),
        ({"model": "m", "messages": [], "response_format": {"type": "json_schema", "json_schema": {"name": "x",
                                                                                                  "extra": 1}}},
         "response_format.json_schema.extra"),
        ({"model": "m", "messages": [], "web_search_options": {}}, "web_search_options"),
    ],
)  # fmt: skip
def test_chat_fields_are_checked_before_any_model_is(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_chat_body(body)
    assert caught.value.param == param
