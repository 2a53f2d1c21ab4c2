"""LangChain's ``ChatOpenAI.bind_tools`` agent loop against Conduit: the model asks for a tool, the loop runs it
and sends the result back, and the model answers from it. Through the simulated OpenAI-compatible upstream
(``test-up-tools``) and the ``local`` provider (``test-chat-tools``), plain and streamed; every request is charged
once."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import httpx
import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from shared.services import Services
from tests.conftest import AccountFactory
from tests.conftest import TestAccount as Account
from tests.harness import ApiServer
from tests.integration.helpers import balance
from tests.integration.openai_helpers import charges, usage_records
from tests.simulators import Simulators

looked_up: list[str] = []


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    looked_up.append(city)
    return json.dumps({"city": city, "temp_c": 21, "sky": "clear"})


def chat_model(api: ApiServer, account: Account, model: str, streaming: bool = False) -> ChatOpenAI:
    return ChatOpenAI(model=model, base_url=f"{api.base_url}/v1", api_key=account.key,  # type: ignore[arg-type]
                      max_retries=0, streaming=streaming, temperature=0.2)  # fmt: skip


async def agent_loop(llm: ChatOpenAI, question: str) -> list[BaseMessage]:
    """The usual agent loop: call the model with the tools bound until it answers without a tool call."""
    agent = llm.bind_tools([get_weather])
    messages: list[BaseMessage] = [HumanMessage(question)]
    for _ in range(4):
        reply = await agent.ainvoke(messages)
        messages.append(reply)
        if not isinstance(reply, AIMessage) or not reply.tool_calls:
            return messages
        for call in reply.tool_calls:
            result = await asyncio.to_thread(get_weather.invoke, call["args"])
            messages.append(ToolMessage(result, tool_call_id=call["id"]))
    raise AssertionError("the agent did not finish")


@pytest.mark.parametrize("streaming", [False, True])
async def test_a_bind_tools_agent_runs_a_real_tool_round_trip_through_the_simulated_upstream(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, sims: Simulators, services: Services,
    streaming: bool,
) -> None:  # fmt: skip
    looked_up.clear()
    account = await make_account(credits="10")
    messages = await agent_loop(chat_model(api, account, "test-up-tools", streaming), "What is the weather in Lisbon?")
    assert looked_up == ["Lisbon"]
    assert [type(m).__name__ for m in messages] == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    call = messages[1].tool_calls[0]  # type: ignore[attr-defined]
    assert (call["name"], call["args"]) == ("get_weather", {"city": "Lisbon"})
    answer = messages[-1].content
    assert answer == 'Simulated answer from tools: {"city": "Lisbon", "temp_c": 21, "sky": "clear"}'
    first, second = (c.body for c in sims.openai.calls_to("chat"))
    assert first["tools"][0]["function"]["name"] == "get_weather" and first.get("stream", False) is streaming
    assert second["messages"][1]["tool_calls"][0]["function"] == {"name": "get_weather",
                                                                  "arguments": '{"city": "Lisbon"}'}  # fmt: skip
    assert second["messages"][2]["role"] == "tool" and second["messages"][2]["tool_call_id"] == call["id"]
    # two model requests, each charged once, at the upstream's reported usage
    spent = Decimal(sum(await charges(api, account.id))) / 1_000_000
    assert len(await charges(api, account.id)) == 2 and spent > 0
    assert await balance(client, account) == (Decimal("10") - spent, Decimal("0"))
    assert [r["status"] for r in await usage_records(api, account.id)] == ["succeeded", "succeeded"]


async def test_a_bind_tools_agent_on_the_local_provider(api: ApiServer, make_account: AccountFactory) -> None:
    looked_up.clear()
    account = await make_account(credits="10")
    messages = await agent_loop(chat_model(api, account, "test-chat-tools"), "What is the weather in Lisbon?")
    assert looked_up == ["Lisbon"]
    answer = messages[-1].content
    assert isinstance(answer, str) and answer.startswith("Tool get_weather returned: ")
    assert '"city": "Lisbon"' in answer
