"""Where the time of one chat completion goes: each server-side step timed alone, one at a time (in-process).

Used by ``bench.openai_compat``: against the same embedded PostgreSQL and Redis and the same instant upstream,
the median wall time of the rate-limit check (one Redis script call), the key lookup (cached), the hold
(``ledger_place_hold``, one durable commit), the upstream call through the adapter (breaker, retries, httpx on
aiohttp) and a bare httpx POST of the same request, and the settlement + usage record (one durable commit).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from shared.accounts.key_cache import KeyCache
from shared.accounts.keys import authenticate
from shared.catalog import load_catalog_paths
from shared.infra.background import BackgroundTasks
from shared.infra.db import Database
from shared.infra.ids import uuid7
from shared.infra.queue import connect_redis
from shared.ledger import place_request_hold, request_settlement, settle_request
from shared.openai_api.chat import _start
from shared.openai_api.routing import call_routes
from shared.providers import ProviderRegistry
from shared.ratelimits.limiter import RateLimiter
from shared.ratelimits.request_limits import RequestLimits
from shared.services import upstream_http_client
from shared.settings import Settings

PARAMS = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 16}


async def _interleaved_ms(steps: dict[str, Callable[[], Awaitable[Any]]], calls: int) -> dict[str, float]:
    """Median wall time of each step, and the mean CPU time this process spent on it (``<name>_cpu``, also in ms);
    the steps take turns, so machine noise hits all of them alike."""
    samples: dict[str, list[float]] = {name: [] for name in steps}
    cpu: dict[str, float] = dict.fromkeys(steps, 0.0)
    for round_ in range(calls + 50):
        for name, fn in steps.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            await fn()
            if round_ >= 50:  # warm-up rounds: connections, prepared statements
                samples[name].append(time.perf_counter() - started)
                cpu[name] += time.process_time() - started_cpu
    result = {name: round(statistics.median(values) * 1000, 3) for name, values in samples.items()}
    result.update({f"{name}_cpu": round(cpu[name] / calls * 1000, 3) for name in steps})
    return result


async def measure_parts(settings: Settings, key: str, model_id: str, calls: int = 500) -> dict[str, float]:
    catalog = load_catalog_paths(settings.catalog_paths)
    model = catalog.get(model_id)
    assert model is not None
    db = await Database.connect(settings, min_size=2, max_size=4)
    redis = await connect_redis(settings.redis_url or "")
    http = upstream_http_client(settings)
    try:
        registry = ProviderRegistry.build(catalog.providers, settings, http=http, redis=redis)
        limits = RequestLimits(RateLimiter(redis), settings.rate_limits, slot_ttl_s=3600)
        cache = KeyCache(BackgroundTasks())
        cache.enabled = True
        principal = await authenticate(db, key, cache)
        route = model.routes[0]
        base = os.environ[f"{route.provider.upper().replace('-', '_')}_BASE_URL"]
        headers = {"Authorization": f"Bearer {os.environ[route.provider.upper().replace('-', '_') + '_API_KEY']}"}
        body = {"model": route.upstream_model, **PARAMS, "stream": False}

        async def hold_and_settle() -> None:
            hold_id = await place_request_hold(db, principal, 50, "bench")
            await settle_request(db, request_settlement(
                hold_id=hold_id, request_id=uuid7(), principal=principal, charge=10, status="succeeded",
                source="chat.completion", model=model.id, kind="text", provider=route.provider,
                units={"input_tokens": 9, "output_tokens": 6}, latency_ms=1,
            ))  # fmt: skip

        async def hold_only() -> None:
            hold_id = await place_request_hold(db, principal, 50, "bench")
            holds.append(hold_id)

        holds: list[Any] = []

        async def bare() -> None:
            response = await http.post(f"{base}/chat/completions", json=body, headers=headers)
            response.json()

        parts = await _interleaved_ms(
            {
                "rate_limit_check_ms": lambda: limits.check(principal),
                "key_auth_cached_ms": lambda: authenticate(db, key, cache),
                "hold_ms": hold_only,
                "hold_plus_settle_ms": hold_and_settle,
                "upstream_through_adapter_ms": lambda: call_routes(registry, model, PARAMS, _start, budget_s=30),
                "upstream_bare_httpx_ms": bare,
            },
            calls,
        )
        for hold_id in holds:  # leave no pending hold behind (the benchmark checks the invariants)
            await settle_request(db, request_settlement(
                hold_id=hold_id, request_id=uuid7(), principal=principal, charge=0, status="failed",
                source="chat.completion", model=model.id, kind="text", provider=None, units={}, latency_ms=0,
            ))  # fmt: skip
        parts["settle_ms"] = round(parts["hold_plus_settle_ms"] - parts["hold_ms"], 3)
        return parts
    finally:
        await http.aclose()
        await redis.aclose()
        await db.close()


def run(settings: Settings, key: str, model_id: str) -> dict[str, float]:
    return asyncio.run(measure_parts(settings, key, model_id))
