"""Account deletion by its owner and suspension by an operator."""

from __future__ import annotations

import asyncio
import json
import uuid
from functools import partial

import httpx

from shared.infra import jobs
from shared.services import Services
from shared.tasks import lifecycle, upstream
from tests.harness import wait_for
from tests.integration.accounts.conftest import BrowserFactory, PersonFactory
from tests.integration.accounts.mailbox import Mailbox
from tests.integration.accounts.oauth_provider import GoogleUser, OAuthProvider
from tests.integration.accounts.test_oauth import oauth_sign_in
from tests.integration.operating.test_platform import conduit

FLUX = {"model": "flux-schnell", "input": {"prompt": "private prompt", "width": 256, "height": 256}}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_deleting_an_account_erases_the_person_and_keeps_anonymous_records(
    person: PersonFactory,
    browser: BrowserFactory,
    oauth_provider: OAuthProvider,
    services: Services,
    mailbox: Mailbox,
    client: httpx.AsyncClient,
) -> None:
    someone = await person("delete")
    b = someone.browser
    secret = (await b.post("/v1/keys", json={"name": "Alice's laptop"})).json()["secret"]
    oauth_provider.sign_in_as("google", GoogleUser(sub=str(uuid.uuid4().int)[:20], email=someone.email))
    assert (await oauth_sign_in(browser(), "google")).status_code == 200  # a linked Google identity
    queued = await b.http.post("/v1/tasks", json=FLUX, headers=bearer(secret))  # no worker runs: stays queued
    assert queued.status_code == 202
    # and one a worker started upstream (claimed, its upstream job saved), as a worker leaves it while it polls
    started = await b.http.post("/v1/tasks", json=FLUX, headers=bearer(secret))
    started_id = uuid.UUID(started.json()["id"])
    claim = await lifecycle.claim(services.db, started_id, lease_s=60)
    assert claim is not None
    assert await upstream.save_submitted(
        services.db, started_id, provider="sim-replicate", upstream_id="pred-of-deleted", progress={},
        generation=claim.attempts,
    )  # fmt: skip
    assert (await client.get("/v1/account", headers=bearer(secret))).status_code == 200  # cached by another API

    missing: dict[str, str] | None
    for missing in ({}, None):  # no password, or no body at all: the field is named, nothing is checked
        refused = await b.request("DELETE", "/v1/account", json=missing)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["param"] == "password"
        assert "password is required" in refused.json()["error"]["message"]
    wrong = await b.request("DELETE", "/v1/account", json={"password": "not my password 1"})
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "invalid_credentials"
    deleted = await b.request("DELETE", "/v1/account", json={"password": someone.password})
    assert deleted.status_code == 204, deleted.text

    # Keys and sessions stop at once, everywhere.
    for http in (b.http, client):
        refused = await wait_for(partial(_status, http, "/v1/account", bearer(secret), 401), timeout=2, interval=0.01)
        assert refused.json()["error"]["code"] == "revoked_api_key"
    assert (await b.get("/v1/account")).status_code == 401
    assert (await browser().signin(someone.email, someone.password)).status_code == 401

    account = await services.db.fetchrow(
        "SELECT email, password_hash, status, deleted_at FROM accounts WHERE id = $1", someone.account_id
    )
    assert account is not None
    assert (account["email"], account["password_hash"], account["status"]) == (None, None, "deleted")
    db = services.db
    assert await db.fetchval("SELECT count(*) FROM oauth_identities WHERE account_id = $1", someone.account_id) == 0
    assert await db.fetchval("SELECT count(*) FROM account_tokens WHERE account_id = $1", someone.account_id) == 0
    assert await db.fetchval("SELECT name FROM api_keys WHERE account_id = $1", someone.account_id) == ""
    for task_id in (uuid.UUID(queued.json()["id"]), started_id):
        task = await db.fetchrow("SELECT status, input FROM tasks WHERE id = $1", task_id)
        assert task is not None and task["status"] == "canceled" and "private prompt" not in task["input"]
    # the upstream job is canceled too (a worker's cancel job), not left running at the operator's cost
    assert await services.redis.zscore("arq:queue", jobs.cancel_upstream(started_id).job_id) is not None
    assert not await services.redis.zscore("arq:queue", jobs.cancel_upstream(uuid.UUID(queued.json()["id"])).job_id)
    # The money trail stays, attached to the anonymous id: signup grant, two holds, two voids.
    kinds = await db.fetch("SELECT kind FROM ledger_entries WHERE account_id = $1 ORDER BY id", someone.account_id)
    assert sorted(k["kind"] for k in kinds) == ["grant", "hold", "hold", "void", "void"]
    assert await db.fetchval("SELECT count(*) FROM usage_records WHERE account_id = $1", someone.account_id) == 2
    await mailbox.wait(someone.email, "Your Conduit account was deleted")

    # The address is free again: signing up with it makes a new account.
    again = browser()
    signup = await again.http.post(
        "/v1/auth/signup", json={"email": someone.email, "password": "A fresh start 22", "age_confirmed": True}
    )
    assert signup.status_code == 202
    await mailbox.wait(someone.email, "Confirm your email", count=2)
    new_id = await db.fetchval("SELECT id FROM accounts WHERE email = $1", someone.email)
    assert new_id is not None and new_id != someone.account_id


async def test_an_oauth_only_account_deletes_with_its_session(
    browser: BrowserFactory, oauth_provider: OAuthProvider, services: Services
) -> None:
    email = f"oauth-only-{uuid.uuid4().hex[:8]}@example.com"
    oauth_provider.sign_in_as("google", GoogleUser(sub=str(uuid.uuid4().int)[:20], email=email))
    b = browser()
    signed_in = await oauth_sign_in(b, "google", age_confirmed="true")
    account_id = uuid.UUID(signed_in.json()["account"]["id"])
    assert (await b.request("DELETE", "/v1/account")).status_code == 204  # no password to confirm: no body
    assert await services.db.fetchval("SELECT status FROM accounts WHERE id = $1", account_id) == "deleted"
    # Signing in with Google again starts a new account (the old identity was erased).
    again = await oauth_sign_in(browser(), "google", age_confirmed="true")
    assert again.json()["account_created"] is True
    assert again.json()["account"]["id"] != str(account_id)


async def test_suspension_stops_keys_sessions_and_sign_in_until_reinstated(
    person: PersonFactory, browser: BrowserFactory, env: dict[str, str], client: httpx.AsyncClient
) -> None:
    someone = await person("suspend")
    b = someone.browser
    secret = (await b.post("/v1/keys", json={"name": "ci"})).json()["secret"]
    assert (await client.get("/v1/account", headers=bearer(secret))).status_code == 200

    result = await asyncio.to_thread(conduit, ["accounts", "suspend", someone.email, "--reason", "sent spam"], env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "suspended"
    for http in (client, b.http):
        refused = await wait_for(partial(_status, http, "/v1/account", bearer(secret), 403), timeout=2)
        assert refused.json()["error"]["code"] == "account_suspended"
        assert "sent spam" in refused.json()["error"]["message"]  # the operator's reason reaches the owner
    session = await b.get("/v1/account")
    assert session.status_code == 403
    assert session.json()["error"]["code"] == "account_suspended"
    assert (await b.post("/v1/tasks", json=FLUX)).status_code == 403
    signin = await browser().signin(someone.email)
    assert signin.status_code == 403
    assert signin.json()["error"]["code"] == "account_suspended"
    assert (await browser().signin(someone.email, "wrong password 99")).json()["error"]["code"] == "invalid_credentials"

    result = await asyncio.to_thread(conduit, ["accounts", "unsuspend", str(someone.account_id)], env)
    assert result.returncode == 0, result.stderr
    await wait_for(lambda: _status(client, "/v1/account", bearer(secret), 200), timeout=2)
    assert (await b.get("/v1/account")).status_code == 200
    unknown = await asyncio.to_thread(conduit, ["accounts", "suspend", "nobody@example.com", "--reason", "x"], env)
    assert unknown.returncode == 1
    assert "account_not_found" in unknown.stderr


async def _status(http: httpx.AsyncClient, path: str, headers: dict[str, str], status: int) -> httpx.Response | None:
    response = await http.get(path, headers=headers)
    return response if response.status_code == status else None
