"""A moderation model through a provider, over real HTTP to a simulator speaking its wire format: OpenAI's
moderation API and a Llama Guard chat model; a block, an allow, a flag; a timeout or an error failing open or
closed per category."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from shared.catalog import Catalog
from shared.catalog.providers import ProviderSpec
from shared.moderation.decisions import ContentPolicyViolation
from shared.moderation.events import Subject
from shared.moderation.pipeline import Moderator
from shared.moderation.policy import PolicyError, parse_policy
from shared.services import Services
from tests.conftest import AccountFactory
from tests.harness import ApiServer
from tests.integration.openai_helpers import async_client
from tests.simulators.base import Fault
from tests.simulators.moderation import ModerationSimulator

SPEC = ProviderSpec(name="sim-mod", protocol="openai", base_url="http://unused", api_key_env="SIM_MOD_API_KEY")
CATEGORIES = {
    "violence": {"action": "block"},  # fails open
    "sexual/minors": {"action": "block", "on_model_error": "closed"},
    "self-harm": {"action": "flag"},
}


@pytest.fixture
async def sim() -> AsyncIterator[ModerationSimulator]:
    simulator = ModerationSimulator("sk-sim-moderation")
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


def moderator(
    services: Services, sim: ModerationSimulator, protocol: str, categories: Any = CATEGORIES, **model: Any
) -> Moderator:
    policy = parse_policy({
        "version": 3, "categories": categories,
        "model": {"protocol": protocol, "provider": "sim-mod", "model": "omni-moderation-latest", **model},
    })  # fmt: skip
    settings = dataclasses.replace(
        services.settings, provider_env={"SIM_MOD_API_KEY": sim.key, "SIM_MOD_BASE_URL": sim.base_url}
    )
    catalog = Catalog([], version=1, providers={"sim-mod": dataclasses.replace(SPEC, base_url_env="SIM_MOD_BASE_URL")})
    return Moderator.build(policy, settings, catalog, http=services.http, db=services.db, redis=services.redis,
                           background=services.background)  # fmt: skip


async def _subject(make_account: AccountFactory) -> Subject:
    account = await make_account(credits="1")
    return Subject(account.id, None, "chat.completion", "test-chat-local", "text")


async def _events(services: Services, subject: Subject) -> list[tuple[str, str, str]]:
    rows = await services.db.fetch(
        "SELECT category, action, checker FROM moderation_events WHERE account_id = $1 ORDER BY id", subject.account_id
    )
    return [(row["category"], row["action"], row["checker"]) for row in rows]


@pytest.mark.parametrize("protocol", ["openai_moderation", "llama_guard"])
async def test_the_model_blocks_and_allows(
    services: Services, sim: ModerationSimulator, make_account: AccountFactory, protocol: str
) -> None:
    checker = moderator(services, sim, protocol)
    subject = await _subject(make_account)
    allowed = await checker.moderate(["a walk in the park"], subject)
    assert allowed.blocked is None and not allowed.flagged
    with pytest.raises(ContentPolicyViolation) as blocked:
        await checker.moderate(["fine", "something SIMVIOLENT"], subject)
    assert blocked.value.category == "violence"
    assert await _events(services, subject) == [("violence", "blocked", "model")]
    operation = "moderations" if protocol == "openai_moderation" else "llama_guard"
    call = sim.calls_to(operation)[-1]
    assert call.headers["authorization"] == f"Bearer {sim.key}"
    assert call.body["model"] == "omni-moderation-latest"
    if protocol == "openai_moderation":
        assert call.body["input"] == ["fine", "something SIMVIOLENT"]  # one call for every text
    else:
        assert call.body["messages"] == [{"role": "user", "content": "something SIMVIOLENT"}]


async def test_the_models_scores_and_a_flag(
    services: Services, sim: ModerationSimulator, make_account: AccountFactory
) -> None:
    checker = moderator(services, sim, "openai_moderation")
    [result] = await checker.classify(["simselfharm thoughts"])
    assert result.scores["self-harm"] == 0.97 and result.scores["violence"] == 0.0003
    decision = await checker.moderate(["simselfharm thoughts"], await _subject(make_account))
    assert decision.blocked is None and [hit.category for hit in decision.flagged] == ["self-harm"]


@pytest.mark.parametrize(
    "fault",
    [Fault(status=None, delay_s=3.0), Fault(500, {"error": {"message": "boom", "type": "server_error"}}), Fault(429)],
    ids=["timeout", "server-error", "rate-limited"],
)
async def test_a_failing_model_fails_closed_only_where_the_policy_says(
    services: Services, sim: ModerationSimulator, make_account: AccountFactory, fault: Fault
) -> None:
    checker = moderator(services, sim, "openai_moderation", timeout_s=0.5)
    subject = await _subject(make_account)
    sim.fail("moderations", fault)
    started = time.monotonic()
    with pytest.raises(ContentPolicyViolation) as closed:  # sexual/minors fails closed: no verdict, no service
        await checker.moderate(["simviolent, but the model cannot say"], subject)
    assert time.monotonic() - started < 2.5  # the policy's timeout, not the upstream's delay
    assert closed.value.category == "sexual/minors"
    assert await _events(services, subject) == [("sexual/minors", "blocked", "model_error")]


async def test_without_a_fail_closed_category_a_failing_model_lets_the_request_through(
    services: Services, sim: ModerationSimulator, make_account: AccountFactory
) -> None:
    every_category_open = {**CATEGORIES, "sexual/minors": {"action": "block"}}
    checker = moderator(services, sim, "llama_guard", every_category_open, timeout_s=0.5)
    subject = await _subject(make_account)
    sim.fail("llama_guard", Fault(status=None, delay_s=3.0))
    decision = await checker.moderate(["simviolent"], subject)  # fails open: served
    assert decision.blocked is None
    assert await _events(services, subject) == []


async def test_a_model_on_a_provider_the_catalog_lacks_stops_the_start(services: Services) -> None:
    policy = parse_policy({"model": {"protocol": "llama_guard", "provider": "nowhere", "model": "llama-guard-3-8b"}})
    with pytest.raises(PolicyError, match=r"model\.provider"):
        Moderator.build(policy, services.settings, services.catalog, http=services.http, db=services.db,
                        redis=services.redis, background=services.background)  # fmt: skip


async def test_many_texts_are_sent_in_batches(
    services: Services, sim: ModerationSimulator, make_account: AccountFactory
) -> None:
    checker = moderator(services, sim, "openai_moderation")
    texts = [f"text number {n}" for n in range(40)]
    texts[35] = "simviolent"
    results = await checker.classify(texts)
    assert [n for n, result in enumerate(results) if result.hits] == [35]
    assert sorted(len(call.body["input"]) for call in sim.calls_to("moderations")) == [8, 32]


async def test_the_routes_and_v1_moderations_use_the_configured_model(
    api: ApiServer, sim: ModerationSimulator, make_account: AccountFactory
) -> None:
    shipped = api.services.moderator
    api.services.moderator = moderator(api.services, sim, "openai_moderation")
    try:
        account = await make_account(credits="1")
        async with async_client(api, account) as oai:
            with pytest.raises(openai.BadRequestError) as refused:
                await oai.chat.completions.create(
                    model="test-chat-local", messages=[{"role": "user", "content": "a simviolent plan"}]
                )
            assert refused.value.code == "content_policy_violation" and "violence" in refused.value.message
            result = await oai.moderations.create(input=["simselfharm", "calm"])
        hurt, calm = result.results
        assert hurt.flagged and hurt.categories.self_harm and hurt.category_scores.self_harm == 0.97
        assert not calm.flagged and calm.category_scores.self_harm == 0.0003  # the model's own scores
        assert len(sim.calls_to("moderations")) == 2
    finally:
        api.services.moderator = shipped
