"""Requests with an API key that does not work are limited per client IP (429 with ``Retry-After``), and a flood of
them costs the database nothing: refused keys are cached briefly, and a spent budget answers before any lookup."""

from __future__ import annotations

import asyncio
import secrets
import string
from collections import Counter

import httpx

from tests.conftest import AccountFactory
from tests.harness import ApiServer
from tests.integration.operating.test_operating import metric_sample
from tests.integration.ratelimits.conftest import INVALID_KEYS_PER_MIN, client_from


def guessed_key() -> str:
    return "cdt_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def invalid_key_counts(http: httpx.AsyncClient) -> dict[str, float]:
    text = (await http.get("/metrics")).text
    return {
        outcome: metric_sample(text, "conduit_invalid_api_keys_total", outcome=outcome)
        for outcome in ("looked_up", "cached", "throttled")
    }


async def test_a_flood_of_one_unknown_key_costs_one_lookup_and_is_limited(
    guarded_api: ApiServer, database_uses: list[str]
) -> None:
    key = guessed_key()
    async with httpx.AsyncClient(base_url=guarded_api.base_url) as local:
        before = await invalid_key_counts(local)
    del database_uses[:]  # /metrics reads the database; count from here
    async with client_from(guarded_api, "127.0.0.7") as flood:
        answers = [await flood.get("/v1/account", headers=bearer(key)) for _ in range(30)]
    flood_uses = list(database_uses)
    assert [a.status_code for a in answers] == [401] * INVALID_KEYS_PER_MIN + [429] * (30 - INVALID_KEYS_PER_MIN)
    assert {a.json()["error"]["code"] for a in answers[:INVALID_KEYS_PER_MIN]} == {"invalid_api_key"}
    limited = answers[INVALID_KEYS_PER_MIN]
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert limited.json()["error"]["code"] == "too_many_invalid_keys"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60 / INVALID_KEYS_PER_MIN
    [lookup] = flood_uses  # the first request's; nothing else touched the database
    assert "FROM api_keys" in lookup
    async with httpx.AsyncClient(base_url=guarded_api.base_url) as local:
        after = await invalid_key_counts(local)
    assert after["looked_up"] - before["looked_up"] == 1
    assert after["cached"] - before["cached"] == INVALID_KEYS_PER_MIN - 1
    assert after["throttled"] - before["throttled"] == 30 - INVALID_KEYS_PER_MIN


async def test_concurrent_guesses_cost_at_most_the_budget_in_lookups(
    guarded_api: ApiServer, database_uses: list[str]
) -> None:
    async with client_from(guarded_api, "127.0.0.8") as guesser:
        answers = await asyncio.gather(*(guesser.get("/v1/account", headers=bearer(guessed_key())) for _ in range(50)))
    assert Counter(a.status_code for a in answers) == {401: INVALID_KEYS_PER_MIN, 429: 50 - INVALID_KEYS_PER_MIN}
    assert len(database_uses) == INVALID_KEYS_PER_MIN, database_uses
    # Another client IP has its own budget.
    async with client_from(guarded_api, "127.0.0.9") as other:
        assert (await other.get("/v1/account", headers=bearer(guessed_key()))).status_code == 401


async def test_a_working_key_does_not_count_against_its_ip(
    guarded_api: ApiServer, make_account: AccountFactory
) -> None:
    account = await make_account()
    async with client_from(guarded_api, "127.0.0.10") as http:
        for _ in range(INVALID_KEYS_PER_MIN - 1):
            assert (await http.get("/v1/account", headers=bearer(guessed_key()))).status_code == 401
        assert (await http.get("/v1/account", headers=bearer(account.key))).status_code == 200  # looked up, given back
        assert (await http.get("/v1/account", headers=bearer(guessed_key()))).status_code == 401  # the last one left
        assert (await http.get("/v1/account", headers=bearer(guessed_key()))).status_code == 429
        # A key this process already knows works is answered at once, whatever the IP's budget.
        assert (await http.get("/v1/account", headers=bearer(account.key))).status_code == 200
        # A malformed key costs no lookup and is answered as before.
        malformed = await http.get("/v1/account", headers=bearer("cdt_short"))
        assert (malformed.status_code, malformed.json()["error"]["code"]) == (401, "invalid_api_key")
