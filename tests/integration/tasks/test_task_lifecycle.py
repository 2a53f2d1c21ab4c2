"""Submit -> worker -> succeeded, with real outputs and exact charges."""

from __future__ import annotations

import io
from decimal import Decimal

import httpx
from PIL import Image

from tests.conftest import AccountFactory
from tests.harness import InProcessWorker
from tests.integration.helpers import balance, submit, wait_terminal


async def test_image_task_succeeds_with_downloadable_output_and_exact_charge(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker
) -> None:
    account = await make_account(credits="10")
    response = await submit(
        client, account, "flux-schnell", prompt="a lighthouse at dusk", width=512, height=384, seed=7
    )
    assert response.status_code == 202, response.text
    created = response.json()
    assert created["status"] == "queued"
    assert created["credits"] == {"held": 0.3, "charged": 0}
    assert response.headers["location"] == f"/v1/tasks/{created['id']}"

    done = await wait_terminal(client, account, created["id"])
    assert done["status"] == "succeeded", done
    assert done["provider"] == "local"
    assert done["credits"] == {"held": 0.3, "charged": 0.3}
    assert done["started_at"] and done["completed_at"]
    [output] = done["outputs"]
    assert output["type"] == "image" and output["content_type"] == "image/png"
    assert (output["width"], output["height"]) == (512, 384)

    # The signed URL works without an API key and serves a real PNG of the requested size.
    async with httpx.AsyncClient() as anonymous:
        file = await anonymous.get(output["url"])
    assert file.status_code == 200
    assert file.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(file.content)).size == (512, 384)

    assert await balance(client, account) == (Decimal("9.7"), Decimal("0"))


async def test_multiple_images_are_charged_per_image(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker
) -> None:
    account = await make_account(credits="10")
    response = await submit(client, account, "flux-dev", prompt="two cats", num_images=2, width=256, height=256)
    done = await wait_terminal(client, account, response.json()["id"])
    assert done["status"] == "succeeded"
    assert len(done["outputs"]) == 2
    assert done["credits"] == {"held": 5, "charged": 5}
    assert await balance(client, account) == (Decimal("5"), Decimal("0"))


async def test_video_task_produces_an_animation_charged_per_second(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker
) -> None:
    account = await make_account(credits="30")
    response = await submit(client, account, "ltx-video", prompt="a ball bouncing", duration_s=2, fps=8,
                            width=256, height=256)  # fmt: skip
    done = await wait_terminal(client, account, response.json()["id"])
    assert done["status"] == "succeeded", done
    [output] = done["outputs"]
    assert output["type"] == "video" and output["duration_s"] == 2
    async with httpx.AsyncClient() as anonymous:
        gif = Image.open(io.BytesIO((await anonymous.get(output["url"])).content))
    assert getattr(gif, "n_frames", 1) == 16
    assert done["credits"]["charged"] == 8
    assert await balance(client, account) == (Decimal("22"), Decimal("0"))


async def test_text_task_is_charged_for_the_tokens_used_and_releases_the_rest(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker
) -> None:
    account = await make_account(credits="1")
    messages = [{"role": "user", "content": "Tell me about lighthouses"}]
    response = await submit(client, account, "llama-3.1-8b-instruct", messages=messages, max_tokens=100)
    held = Decimal(str(response.json()["credits"]["held"]))
    done = await wait_terminal(client, account, response.json()["id"])
    assert done["status"] == "succeeded"
    assert done["outputs"][0]["type"] == "text" and done["outputs"][0]["text"]
    charged = Decimal(str(done["credits"]["charged"]))
    assert 0 < charged < held  # worst case held up front, actual usage charged
    ledger = (await client.get("/v1/account/ledger", headers=account.headers)).json()["data"]
    kinds = [entry["type"] for entry in ledger]
    assert kinds[:3] == ["release", "charge", "hold"]
    assert Decimal(str(ledger[0]["amount"])) + charged == held
    assert await balance(client, account) == (Decimal("1") - charged, Decimal("0"))


async def test_per_request_pricing(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker
) -> None:
    account = await make_account(credits="1")
    response = await submit(client, account, "test-per-request", messages=[{"role": "user", "content": "hi"}])
    done = await wait_terminal(client, account, response.json()["id"])
    assert done["credits"] == {"held": 0.25, "charged": 0.25}


async def test_provider_refusal_fails_the_task_and_voids_the_hold(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker
) -> None:
    account = await make_account(credits="5")
    response = await submit(client, account, "test-refusing", prompt="anything")
    done = await wait_terminal(client, account, response.json()["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == "content_policy_violation"
    assert done["credits"]["charged"] == 0
    assert await balance(client, account) == (Decimal("5"), Decimal("0"))


async def test_task_past_its_deadline_fails_and_is_not_charged(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker
) -> None:
    account = await make_account(credits="5")
    response = await submit(client, account, "test-short-deadline", messages=[{"role": "user", "content": "hi"}])
    done = await wait_terminal(client, account, response.json()["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == "deadline_exceeded"
    assert await balance(client, account) == (Decimal("5"), Decimal("0"))


async def test_listing_tasks_paginates_and_filters(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker
) -> None:
    account = await make_account(credits="20")
    ids = []
    for n in range(5):
        response = await submit(client, account, "sdxl", prompt=f"picture {n}", width=256, height=256)
        ids.append(response.json()["id"])
    refused = (await submit(client, account, "test-refusing", prompt="x")).json()["id"]
    for task_id in [*ids, refused]:
        await wait_terminal(client, account, task_id)

    seen: list[str] = []
    after = None
    while True:
        params: dict[str, str | int] = {"limit": 2, "model": "sdxl", **({"after": after} if after else {})}
        page = (await client.get("/v1/tasks", params=params, headers=account.headers)).json()
        seen += [t["id"] for t in page["data"]]
        if not page["has_more"]:
            break
        after = page["next_cursor"]
    assert seen == list(reversed(ids))  # newest first, every task exactly once

    failed = (await client.get("/v1/tasks", params={"status": "failed"}, headers=account.headers)).json()
    assert [t["id"] for t in failed["data"]] == [refused]
