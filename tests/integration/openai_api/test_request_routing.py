"""Request-level routing, as OpenRouter takes it: ``models`` (fallback models tried in order) and ``provider``
(``order``, ``allow_fallbacks``, ``ignore``, ``only``). The response and the usage record say which model and
provider served; the request is charged once, at the price of the model that served, and holds the most
expensive candidate's worst case.

``test-up-tools`` runs on ``sim-openai`` (1000 / 2000 credits per 1M tokens), ``test-up-pricey`` on
``sim-openai-backup`` (5000 / 10000); ``test-up-chat-fallback`` has both providers as routes.
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
from tests.integration.openai_helpers import async_client, charges, token_cost, usage_records
from tests.simulators import Simulators
from tests.simulators.base import Fault

HI: list[Any] = [{"role": "user", "content": "hi there"}]
DOWN = (Fault(500), Fault(502), Fault(503))  # PROVIDER_MAX_ATTEMPTS=3 in tests: every attempt of one route


async def holds(services: Services, account_id: Any) -> list[int]:
    rows = await services.db.fetch(
        "SELECT amount FROM ledger_entries WHERE account_id = $1 AND kind = 'hold' ORDER BY id", account_id
    )
    return [row["amount"] for row in rows]


async def test_a_failing_model_falls_back_to_the_next_charged_once_at_its_price_holding_the_dearest(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, sims: Simulators, services: Services
) -> None:
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        alone = await oai.chat.completions.create(model="test-up-pricey", messages=HI, max_tokens=50)
        sims.openai.fail("chat", *DOWN)
        raw = await oai.chat.completions.with_raw_response.create(
            model="test-up-tools", messages=HI, max_tokens=50, extra_body={"models": ["test-up-pricey"]}
        )
    completion = raw.parse()
    assert completion.model == "test-up-pricey"
    assert completion.model_extra is not None and completion.model_extra["provider"] == "sim-openai-backup"
    assert len(sims.openai.calls_to("chat")) == 3 and len(sims.openai_backup.calls_to("chat")) == 2
    first_hold, fallback_hold = await holds(services, account.id)
    assert fallback_hold == first_hold  # the dearer candidate's worst case (the same request to it alone)
    usage = sims.openai_backup.usages[-1]
    price = token_cost(usage["prompt_tokens"], usage["completion_tokens"], 5000, 10000)
    assert Decimal(raw.headers["X-Conduit-Credits-Charged"]) == price
    assert alone.usage is not None
    first_price = token_cost(alone.usage.prompt_tokens, alone.usage.completion_tokens, 5000, 10000)
    assert await charges(api, account.id) == [int(first_price * 1_000_000), int(price * 1_000_000)]
    assert await balance(client, account) == (Decimal("10") - first_price - price, Decimal("0"))
    record = (await usage_records(api, account.id))[-1]
    assert (record["model"], record["provider"], record["status"]) == ("test-up-pricey", "sim-openai-backup",
                                                                       "succeeded")  # fmt: skip


async def test_every_candidate_failing_is_502_and_costs_nothing(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory, sims: Simulators, services: Services
) -> None:
    account = await make_account(credits="10")
    sims.openai.fail("chat", *DOWN)
    sims.openai_backup.fail("chat", *DOWN)
    async with async_client(api, account) as oai:
        with pytest.raises(openai.InternalServerError) as caught:
            await oai.chat.completions.create(model="test-up-tools", messages=HI, max_tokens=10, stream=True,
                                              extra_body={"models": ["test-up-pricey"]})  # fmt: skip
    assert caught.value.status_code == 502
    assert await balance(client, account) == (Decimal("10"), Decimal("0"))
    [record] = await usage_records(api, account.id)
    assert (record["model"], record["status"], record["credits"]) == ("test-up-tools", "failed", 0)


async def test_a_model_that_cannot_honour_the_request_hands_it_to_a_fallback_that_can(
    api: ApiServer, make_account: AccountFactory
) -> None:
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    account = await make_account(credits="10")
    async with async_client(api, account) as oai:
        completion = await oai.chat.completions.create(
            model="test-chat-local", messages=[{"role": "user", "content": "weather?"}], tools=[tool],  # type: ignore[list-item]
            extra_body={"models": ["test-chat-tools"]},
        )  # fmt: skip
        with pytest.raises(openai.NotFoundError) as unknown:
            await oai.chat.completions.create(model="test-chat-local", messages=HI,
                                              extra_body={"models": ["test-chat-tools", "no-such-model"]})  # fmt: skip
    assert completion.model == "test-chat-tools" and completion.choices[0].finish_reason == "tool_calls"
    assert unknown.value.param == "models[1]"


async def test_provider_order_ignore_only_and_allow_fallbacks(
    api: ApiServer, make_account: AccountFactory, sims: Simulators
) -> None:
    account = await make_account(credits="10")

    async def served(provider: dict[str, Any]) -> str:
        completion = await oai.chat.completions.create(model="test-up-chat-fallback", messages=HI, max_tokens=10,
                                                       extra_body={"provider": provider})  # fmt: skip
        assert completion.model_extra is not None
        return str(completion.model_extra["provider"])

    async with async_client(api, account) as oai:
        assert await served({}) == "sim-openai"
        assert await served({"order": ["sim-openai-backup"]}) == "sim-openai-backup"
        assert await served({"ignore": ["sim-openai"]}) == "sim-openai-backup"
        assert await served({"only": ["sim-openai-backup", "sim-openai"]}) == "sim-openai"
        sims.openai_backup.fail("chat", *DOWN)
        assert await served({"order": ["sim-openai-backup"]}) == "sim-openai"  # then the others in catalog order
        sims.openai_backup.fail("chat", *DOWN)
        calls_before = len(sims.openai.calls_to("chat"))
        with pytest.raises(openai.InternalServerError):
            await served({"order": ["sim-openai-backup"], "allow_fallbacks": False})
        assert len(sims.openai.calls_to("chat")) == calls_before  # no other provider was tried
        with pytest.raises(openai.BadRequestError) as excluded:
            await served({"only": ["together"]})
    assert excluded.value.param == "provider"
