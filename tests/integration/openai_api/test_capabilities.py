"""Every field honoured or refused: a request using a capability its model lacks, or a field Conduit does not
support, is a ``400`` naming the field (nothing held, recorded as a failed request); a request needing what only
some routes have goes to those routes; ``GET /v1/models`` shows the capabilities.

``test-chat-local`` declares no capabilities; ``test-up-split``'s first route (``sim-openai-backup``) lacks tools
and logprobs, its second (``sim-openai``) has them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from shared.services import Services
from tests.conftest import AccountFactory
from tests.harness import ApiServer
from tests.integration.helpers import balance
from tests.integration.openai_helpers import async_client, usage_records
from tests.simulators import Simulators

HI: list[Any] = [{"role": "user", "content": "hi"}]
TOOL: Any = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": [TOOL]}, "tools"),
        ({"tools": [TOOL], "parallel_tool_calls": True}, "tools"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}, "response_format"),
        ({"logprobs": True}, "logprobs"),
        ({"n": 2}, "n"),
        ({"max_completion_tokens": 5000}, "max_completion_tokens"),
        ({"messages": [{"role": "user", "content": [IMAGE]}]}, "messages[0].content[0]"),
        ({"messages": [*HI, {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]},
         "messages[1].tool_calls"),
        ({"messages": [{"role": "tool", "tool_call_id": "c1", "content": "x"}]}, "messages[0]"),
    ],
)  # fmt: skip
async def test_a_capability_the_model_lacks_is_refused_naming_the_field(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, services: Services,
    fields: dict[str, Any], param: str,
) -> None:  # fmt: skip
    account = await make_account(credits="10")
    async with httpx.AsyncClient(base_url=api.base_url) as raw:
        response = await raw.post("/v1/chat/completions", headers=account.headers,
                                  json={"model": "test-chat-local", "messages": HI, **fields})  # fmt: skip
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert await balance(client, account) == (Decimal("10"), Decimal("0"))
    [record] = await usage_records(api, account.id)
    assert (record["status"], record["model"], record["credits"]) == ("failed", "test-chat-local", 0)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"store": True}, "store"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"reasoning_effort": "high"}, "reasoning_effort"),
        ({"prediction": {"type": "content", "content": "x"}}, "prediction"),
        ({"stream": True, "stream_options": {"include_usage": True, "extra": 1}}, "stream_options.extra"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0]"),
        ({"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "g"}}}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"response_format": {"type": "yaml"}}, "response_format"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"top_p": 1.5}, "top_p"),
        ({"frequency_penalty": -3}, "frequency_penalty"),
        ({"logit_bias": {"50256": 101}}, "logit_bias.50256"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"provider": {"sort": "price"}}, "provider.sort"),
        ({"models": "test-chat-tools"}, "models"),
    ],
)
async def test_fields_conduit_does_not_support_are_refused_naming_them(
    api: ApiServer, make_account: AccountFactory, fields: dict[str, Any], param: str
) -> None:
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        with pytest.raises(openai.BadRequestError) as caught:
            await oai.chat.completions.create(model="test-chat-tools", messages=HI, extra_body=fields)
    assert caught.value.param == param, caught.value.message


async def test_trivially_honoured_values_are_accepted(api: ApiServer, make_account: AccountFactory) -> None:
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        completion = await oai.chat.completions.create(
            model="test-chat-tools", messages=HI, max_tokens=5, store=False, modalities=["text"], service_tier="auto",
            metadata={},
        )  # fmt: skip
    assert completion.choices[0].message.content


async def test_a_request_needing_tools_skips_the_route_without_them(
    api: ApiServer, make_account: AccountFactory, sims: Simulators
) -> None:
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        plain = await oai.chat.completions.create(model="test-up-split", messages=HI, max_tokens=20)
        tools = await oai.chat.completions.create(model="test-up-split", messages=HI, max_tokens=20, tools=[TOOL])
        logprobs = await oai.chat.completions.create(model="test-up-split", messages=HI, max_tokens=20, logprobs=True)
    assert plain.model_extra is not None and plain.model_extra["provider"] == "sim-openai-backup"
    assert tools.model_extra is not None and tools.model_extra["provider"] == "sim-openai"
    assert logprobs.model_extra is not None and logprobs.model_extra["provider"] == "sim-openai"
    assert [c.body.get("tools") is not None for c in sims.openai.calls_to("chat")] == [True, False]
    assert [c.body.get("tools") for c in sims.openai_backup.calls_to("chat")] == [None]


async def test_a_capability_only_a_route_without_credentials_has_is_a_400(
    api: ApiServer, make_account: AccountFactory
) -> None:
    # test-tools-unavailable offers tools through sim-nokey (no credentials); its local route lacks them
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        answer = await oai.chat.completions.create(model="test-tools-unavailable", messages=HI, max_tokens=5)
        with pytest.raises(openai.BadRequestError) as caught:
            await oai.chat.completions.create(model="test-tools-unavailable", messages=HI, tools=[TOOL])
    assert answer.model_extra is not None and answer.model_extra["provider"] == "local"
    assert caught.value.param == "tools"
    assert "no available provider of 'test-tools-unavailable' (local) supports tools" in caught.value.message


async def test_the_models_list_shows_capabilities_and_what_routes_lack(api: ApiServer) -> None:
    async with httpx.AsyncClient(base_url=api.base_url) as anonymous:
        split = (await anonymous.get("/v1/models/test-up-split")).json()
        local = (await anonymous.get("/v1/models/test-chat-local")).json()
        embed = (await anonymous.get("/v1/models/test-embed-local")).json()
        image = (await anonymous.get("/v1/models/test-image-local")).json()
    assert split["capabilities"] == {"tools": True, "parallel_tool_calls": False, "json_mode": True,
                                     "json_schema": False, "vision": False, "logprobs": True, "max_context": None,
                                     "max_output": 4096, "max_n": 2}  # fmt: skip
    assert split["route_capabilities"] == {"sim-openai-backup": {"tools": False, "logprobs": False}}
    assert local["capabilities"]["tools"] is False and "route_capabilities" not in local
    assert embed["kind"] == "embedding" and embed["capabilities"] == {
        "dimensions": 64, "custom_dimensions": True, "max_inputs": 16, "max_context": 512}  # fmt: skip
    assert "capabilities" not in image
