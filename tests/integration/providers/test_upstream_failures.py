"""Upstream failures: transient ones are retried (then the next route is used), permanent ones fail the
task at once with a normalised error, and a failing provider's circuit opens for every worker."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx

from shared.providers.circuit import CircuitBreaker, Gate
from shared.services import Services
from shared.settings import Settings
from tests.conftest import AccountFactory
from tests.harness import InProcessWorker
from tests.integration.helpers import balance, charge_count, submit, wait_terminal
from tests.simulators import Simulators
from tests.simulators.base import Fault, payload

if TYPE_CHECKING:
    from tests.conftest import TestAccount

HELLO = [{"role": "user", "content": "hello there"}]


@contextlib.asynccontextmanager
async def worker_with(services: Services, settings: Settings, **changes: Any) -> AsyncIterator[InProcessWorker]:
    await services.redis.flushdb()
    async with InProcessWorker(dataclasses.replace(settings, **changes)) as running:
        yield running


async def run_chat(client: httpx.AsyncClient, account: TestAccount, model: str = "test-up-chat") -> dict[str, Any]:
    response = await submit(client, account, model, messages=HELLO, max_tokens=50)
    assert response.status_code == 202, response.text
    return await wait_terminal(client, account, response.json()["id"], timeout=60)


async def test_429_is_retried_after_the_retry_after_delay(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker, sims: Simulators
) -> None:
    sims.openai.fail("chat", Fault(429, body=payload("openai_error_rate_limit"), headers={"Retry-After": "1"}))
    account = await make_account(credits="5")
    done = await run_chat(client, account)
    assert done["status"] == "succeeded", done
    first, second = sims.openai.calls_to("chat")
    assert second.at - first.at >= 0.95  # waited as told, not the ~0.5 s default backoff


async def test_5xx_is_retried_on_the_same_route(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker, sims: Simulators
) -> None:
    sims.openai.fail("chat", Fault(500), Fault(503))
    sims.fal.fail("submit", Fault(502))
    sims.replicate.fail("get", Fault(504))  # a poll failing is retried too
    account = await make_account(credits="5")
    assert (await run_chat(client, account))["status"] == "succeeded"
    assert len(sims.openai.calls_to("chat")) == 3
    fal = await submit(client, account, "test-up-fal-image", prompt="retry me", width=256, height=256)
    replicate = await submit(client, account, "test-up-replicate", prompt="retry me")
    for response in (fal, replicate):
        assert (await wait_terminal(client, account, response.json()["id"]))["status"] == "succeeded"
    assert len(sims.fal.calls_to("submit")) == 2 and len(sims.fal.requests) == 1
    assert len(sims.replicate.calls_to("create")) == 1


async def test_a_timeout_is_retried(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services, settings: Settings, sims: Simulators
) -> None:
    sims.openai.fail("chat", Fault(status=None, delay_s=4))  # answers, but far too late
    account = await make_account(credits="5")
    async with worker_with(services, settings, provider_read_timeout_s=1.0):
        started = time.monotonic()
        done = await run_chat(client, account)
    assert done["status"] == "succeeded", done
    assert len(sims.openai.calls_to("chat")) == 2
    assert time.monotonic() - started < 4  # did not wait for the slow answer


async def test_malformed_json_is_retried_and_never_shown(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker, sims: Simulators
) -> None:
    broken = Fault(200, body=b'{"id": "chatcmpl-1", "choices": [{"message": {"content": "half')
    sims.openai.fail("chat", broken)
    account = await make_account(credits="5")
    assert (await run_chat(client, account))["status"] == "succeeded"

    sims.openai.fail("chat", broken, broken, broken)
    done = await run_chat(client, account)
    assert done["status"] == "failed"
    assert done["error"]["code"] == "upstream_bad_response"
    assert "half" not in done["error"]["message"] and "chatcmpl" not in done["error"]["message"]
    assert len(sims.openai.calls_to("chat")) == 2 + 3  # broken + retried, then three broken


async def test_a_permanent_4xx_fails_at_once_without_fallback_or_leaking_the_upstream_body(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker, sims: Simulators
) -> None:
    sims.openai.fail("chat", Fault(400, body=payload("openai_error_invalid")))
    account = await make_account(credits="5")
    done = await run_chat(client, account, "test-up-chat-fallback")
    assert done["status"] == "failed"
    assert done["error"] == {"code": "upstream_invalid_request",
                             "message": "sim-openai rejected the request as invalid"}  # fmt: skip
    assert len(sims.openai.calls_to("chat")) == 1  # not retried
    assert sims.openai_backup.calls_to("chat") == []  # not sent elsewhere either
    assert done["credits"]["charged"] == 0
    assert await balance(client, account) == (Decimal("5"), Decimal("0"))


async def test_content_policy_refusals_get_one_code_across_providers(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker, sims: Simulators
) -> None:
    sims.openai.fail("images", Fault(400, body=payload("openai_error_content_policy")))
    account = await make_account(credits="5")
    openai = await submit(client, account, "test-up-image-b64", prompt="something", width=256, height=256)
    replicate = await submit(client, account, "test-up-replicate-nsfw", prompt="something", width=256, height=256)
    for response in (openai, replicate):
        done = await wait_terminal(client, account, response.json()["id"])
        assert done["status"] == "failed"
        assert done["error"]["code"] == "content_policy_violation"
        assert "safety system" not in done["error"]["message"] and "NSFW" not in done["error"]["message"]
    assert await balance(client, account) == (Decimal("5"), Decimal("0"))


async def test_a_failing_route_falls_back_to_the_next_and_the_task_is_charged_once(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    worker: InProcessWorker,
    sims: Simulators,
    services: Services,
) -> None:
    sims.openai.fail("chat", Fault(500), Fault(502), Fault(503))  # every attempt on the first route
    account = await make_account(credits="5")
    done = await run_chat(client, account, "test-up-chat-fallback")
    assert done["status"] == "succeeded", done
    assert done["provider"] == "sim-openai-backup"
    assert len(sims.openai.calls_to("chat")) == 3
    [call] = sims.openai_backup.calls_to("chat")
    assert call.body["model"] == "sim-llama-8b-backup"
    [usage] = sims.openai_backup.usages
    expected = Decimal(usage["prompt_tokens"] * 1000 + usage["completion_tokens"] * 2000) / 1_000_000
    assert Decimal(str(done["credits"]["charged"])) == expected  # the model's price, whoever served it
    assert await charge_count(services.db, done["id"]) == 1
    assert await balance(client, account) == (Decimal("5") - expected, Decimal("0"))


async def test_refused_credentials_and_long_rate_limits_move_to_the_next_route_at_once(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker, sims: Simulators
) -> None:
    account = await make_account(credits="5")
    done = await run_chat(client, account, "test-up-chat-badkey")
    assert (done["status"], done["provider"]) == ("succeeded", "sim-openai-backup")
    [refused] = sims.openai.calls_to("chat")  # 401: not retried
    assert refused.headers["authorization"] == "Bearer sk-wrong"
    assert done["credits"]["charged"] == 0.5

    sims.openai.fail("chat", Fault(429, headers={"Retry-After": "600"}))  # beyond the cap: try elsewhere now
    started = time.monotonic()
    done = await run_chat(client, account, "test-up-chat-fallback")
    assert (done["status"], done["provider"]) == ("succeeded", "sim-openai-backup")
    assert time.monotonic() - started < 10
    assert len(sims.openai.calls_to("chat")) == 2


async def test_fallback_across_protocols_from_replicate_to_fal(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker, sims: Simulators
) -> None:
    sims.replicate.fail("create", Fault(503), Fault(503), Fault(503))
    account = await make_account(credits="5")
    response = await submit(client, account, "test-up-cross-protocol", prompt="either", width=256, height=256)
    done = await wait_terminal(client, account, response.json()["id"])
    assert (done["status"], done["provider"]) == ("succeeded", "sim-fal")
    assert sims.replicate.predictions == {} and len(sims.fal.requests) == 1
    assert done["credits"] == {"held": 0.5, "charged": 0.5}


async def test_when_every_route_fails_the_task_fails_and_its_hold_is_voided(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker, sims: Simulators
) -> None:
    sims.openai.fail("chat", *[Fault(503)] * 3)
    sims.openai_backup.fail("chat", *[Fault(502)] * 3)
    account = await make_account(credits="5")
    done = await run_chat(client, account, "test-up-chat-fallback")
    assert done["status"] == "failed"
    assert done["error"]["code"] == "upstream_unavailable"
    assert "HTTP 502" in done["error"]["message"]
    assert await balance(client, account) == (Decimal("5"), Decimal("0"))


async def test_the_circuit_opens_for_every_worker_and_a_probe_closes_it(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    services: Services,
    settings: Settings,
    sims: Simulators,
) -> None:
    sims.openai.fail("chat", *[Fault(500)] * 6)
    account = await make_account(credits="10")
    other_process = CircuitBreaker(services.redis, threshold=2, cooldown_s=3)
    async with worker_with(services, settings, circuit_failure_threshold=2, circuit_cooldown_s=3.0):
        for _ in range(2):  # two calls fail after their retries: the circuit opens
            assert (await run_chat(client, account, "test-up-chat-fallback"))["provider"] == "sim-openai-backup"
        assert len(sims.openai.calls_to("chat")) == 6
        assert await other_process.allow("sim-openai") is Gate.OPEN  # shared through Redis

        done = await run_chat(client, account, "test-up-chat-fallback")
        assert done["provider"] == "sim-openai-backup"
        assert len(sims.openai.calls_to("chat")) == 6  # skipped while open

        await asyncio.sleep(3.2)  # the cool-down is a span of time: nothing to poll for
        done = await run_chat(client, account, "test-up-chat-fallback")  # the half-open probe succeeds
        assert done["provider"] == "sim-openai"
        assert len(sims.openai.calls_to("chat")) == 7
    assert await other_process.allow("sim-openai") is Gate.CLOSED


async def test_outputs_that_are_too_large_or_not_images_fail_the_task_uncharged(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    services: Services,
    settings: Settings,
    sims: Simulators,
) -> None:
    account = await make_account(credits="5")
    page = sims.openai.host_file("login.png", b"<html><body>Please sign in</body></html>", "image/png")
    sims.openai.fail("images", Fault(200, body={"created": 1, "data": [{"url": page}]}))
    async with worker_with(services, settings, output_max_bytes=4096):
        not_an_image = await submit(client, account, "test-up-image-url", prompt="x", width=256, height=256)
        done = await wait_terminal(client, account, not_an_image.json()["id"])
        assert (done["status"], done["error"]["code"]) == ("failed", "unsupported_output")

        too_large = await submit(client, account, "test-up-image-url", prompt="x", width=1024, height=1024)
        done = await wait_terminal(client, account, too_large.json()["id"])
        assert (done["status"], done["error"]["code"]) == ("failed", "output_too_large")
    for response in (not_an_image, too_large):
        assert not (services.storage.root / "outputs" / response.json()["id"]).exists()
    assert await balance(client, account) == (Decimal("5"), Decimal("0"))


async def test_a_half_open_circuit_lets_exactly_one_probe_through(services: Services) -> None:
    breaker = CircuitBreaker(services.redis, threshold=1, cooldown_s=0.3)
    provider = f"probe-{uuid.uuid4().hex[:8]}"
    assert await breaker.allow(provider) is Gate.CLOSED
    assert await breaker.record_failure(provider) is True
    assert await breaker.allow(provider) is Gate.OPEN
    await asyncio.sleep(0.35)
    assert await breaker.allow(provider) is Gate.PROBE
    assert await breaker.allow(provider) is Gate.OPEN  # others wait for the probe's outcome
    assert await breaker.record_failure(provider) is True  # the probe failed: open for another cool-down
    assert await breaker.allow(provider) is Gate.OPEN
    await asyncio.sleep(0.35)
    gate = await breaker.allow(provider)
    assert gate is Gate.PROBE
    await breaker.record_success(provider, gate)
    assert await breaker.allow(provider) is Gate.CLOSED
