"""Promotional codes: created with the operator CLI, claimed once per account, never beyond their limit."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from typing import Any

import httpx

from shared.accounts.rewards import create_promo_code
from shared.services import Services
from tests.conftest import AccountFactory
from tests.harness import ApiServer
from tests.integration.accounts.conftest import PersonFactory
from tests.integration.operating.test_platform import conduit


def unique_code(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}".upper()


async def redeem(http: httpx.AsyncClient, headers: dict[str, str], code: str) -> httpx.Response:
    return await http.post("/v1/promo-codes/redeem", json={"code": code}, headers=headers)


async def test_cli_code_claimed_concurrently_never_beyond_its_limit(
    env: dict[str, str], make_account: AccountFactory, accounts_api: ApiServer, services: Services
) -> None:
    code = unique_code("spring")
    created = await asyncio.to_thread(
        conduit,
        ["promo", "create", "--code", code.lower(), "--credits", "10", "--max-redemptions", "5",
         "--credit-validity-days", "7", "--expires-in-days", "30"],
        env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    promo = json.loads(created.stdout)
    assert (promo["code"], promo["credits"], promo["max_redemptions"], promo["redemptions"]) == (code, 10, 5, 0)

    accounts = [await make_account(credits="0") for _ in range(12)]
    async with httpx.AsyncClient(base_url=accounts_api.base_url, timeout=60) as http:
        responses = await asyncio.gather(*(redeem(http, a.headers, code) for a in accounts))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] * 5 + [409] * 7
        assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == {"promo_code_exhausted"}
        winners = [a for a, r in zip(accounts, responses, strict=True) if r.status_code == 200]
        for account, response in zip(accounts, responses, strict=True):
            balance = (await http.get("/v1/account", headers=account.headers)).json()["balance"]["available"]
            assert balance == (10 if response.status_code == 200 else 0)
    lots = await services.db.fetch(
        "SELECT account_id, amount, expires_at - created_at AS validity FROM credit_lots WHERE reference = $1", code
    )
    assert sorted(lot["account_id"] for lot in lots) == sorted(a.id for a in winners)
    assert all(abs(lot["validity"].total_seconds() / 86400 - 7) < 0.01 for lot in lots)

    listed = await asyncio.to_thread(conduit, ["promo", "list"], env)
    assert next(p for p in json.loads(listed.stdout) if p["code"] == code)["redemptions"] == 5


async def test_an_account_claims_a_code_once_even_concurrently(
    person: PersonFactory, services: Services, make_account: AccountFactory, accounts_api: ApiServer
) -> None:
    promo = await create_promo_code(services.db, credits=2_000_000, code=unique_code("once"))
    account = await make_account(credits="0")
    async with httpx.AsyncClient(base_url=accounts_api.base_url, timeout=60) as http:
        responses = await asyncio.gather(*(redeem(http, account.headers, promo.code) for _ in range(6)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] + [409] * 5
        assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == {"promo_code_already_redeemed"}
        ok = next(r for r in responses if r.status_code == 200).json()
        assert (ok["code"], ok["credits"], ok["expires_at"]) == (promo.code, 2, None)
        assert (await http.get("/v1/account", headers=account.headers)).json()["balance"]["available"] == 2
    # With a session (and its CSRF token), in any letter case.
    someone = await person("promo")
    claimed = await someone.browser.post("/v1/promo-codes/redeem", json={"code": promo.code.lower()})
    assert claimed.status_code == 200, claimed.text
    balance = (await someone.browser.get("/v1/account")).json()["balance"]["available"]
    assert balance == 27  # 25 signup reward + 2


async def test_expired_disabled_and_unknown_codes(
    env: dict[str, str], make_account: AccountFactory, accounts_api: ApiServer, services: Services
) -> None:
    expiring = await create_promo_code(
        services.db,
        credits=1_000_000,
        code=unique_code("late"),
        expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )
    await services.db.execute(
        "UPDATE promo_codes SET expires_at = now() - interval '1 second' WHERE id = $1", expiring.id
    )
    disabled = await create_promo_code(services.db, credits=1_000_000, code=unique_code("off"))
    result = await asyncio.to_thread(conduit, ["promo", "disable", disabled.code], env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["disabled"] is True
    account = await make_account(credits="0")
    async with httpx.AsyncClient(base_url=accounts_api.base_url, timeout=60) as http:
        for code in (expiring.code, disabled.code):
            response = await redeem(http, account.headers, code)
            assert response.status_code == 409
            assert response.json()["error"]["code"] == "promo_code_expired"
        guesses: list[Any] = [(await redeem(http, account.headers, f"GUESS-{n}")).status_code for n in range(11)]
        assert guesses == [404] * 10 + [429]
        assert (await http.get("/v1/account", headers=account.headers)).json()["balance"]["available"] == 0
    # A refused claim counts nothing against the code.
    assert await services.db.fetchval("SELECT redemptions FROM promo_codes WHERE id = $1", expiring.id) == 0
    bad = await asyncio.to_thread(conduit, ["promo", "create", "--credits", "-1"], env)
    assert bad.returncode != 0
