"""Every list route answers in one shape; a paginated one leads from page to page with ``next_cursor``."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import AccountFactory
from tests.conftest import TestAccount as Account


async def walk(client: httpx.AsyncClient, path: str, caller: Account) -> list[dict[str, Any]]:
    """Every page of ``path`` (which asks for one item a page), following ``next_cursor``."""
    pages: list[dict[str, Any]] = []
    cursor = None
    while len(pages) < 10:
        response = await client.get(path + (f"&after={cursor}" if cursor else ""), headers=caller.headers)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        cursor = pages[-1]["next_cursor"]
        if cursor is None:
            break
    return pages


async def test_the_ledger_pages_lead_one_to_the_next(client: httpx.AsyncClient, make_account: AccountFactory) -> None:
    admin = await make_account(role="admin")
    account = await make_account(credits="3")
    for amount in (1, 2):
        credited = await client.post(
            f"/v1/admin/accounts/{account.id}/credits",
            json={"amount": amount, "reason": f"goodwill {amount}"},
            headers=admin.headers,
        )
        assert credited.status_code == 200, credited.text

    pages = await walk(client, "/v1/account/ledger?limit=1", account)

    assert [list(page) for page in pages] == [["object", "data", "has_more", "next_cursor"]] * 3
    assert [page["object"] for page in pages] == ["list"] * 3
    assert [[entry["amount"] for entry in page["data"]] for page in pages] == [[2], [1], [3]]  # newest first
    assert [page["has_more"] for page in pages] == [True, True, False]
    assert [page["next_cursor"] for page in pages[:2]] == [page["data"][0]["id"] for page in pages[:2]]


async def test_an_admin_search_pages_through_the_accounts_found(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(role="admin")
    found = [await make_account(), await make_account()]

    one = await walk(client, f"/v1/admin/accounts?q={found[0].email}&limit=1", admin)

    assert [[row["email"] for row in page["data"]] for page in one] == [[found[0].email]]
    assert (one[0]["has_more"], one[0]["next_cursor"]) == (False, None)
    newest_first = await walk(client, "/v1/admin/accounts?limit=1", admin)
    assert [page["data"][0]["email"] for page in newest_first[:3]] == [found[1].email, found[0].email, admin.email]
    assert [page["has_more"] for page in newest_first[:3]] == [True, True, True]


async def test_lists_without_pages_have_the_same_shape(client: httpx.AsyncClient, make_account: AccountFactory) -> None:
    account = await make_account()
    models = (await client.get("/v1/models")).json()
    assert list(models) == ["object", "data"]
    assert models["object"] == "list"
    assert {"flux-schnell", "sdxl"} <= {model["id"] for model in models["data"]}

    endpoints = (await client.get("/v1/webhooks/endpoints", headers=account.headers)).json()
    assert endpoints == {"object": "list", "data": [], "has_more": False, "next_cursor": None}
    assert list(endpoints) == ["object", "data", "has_more", "next_cursor"]
