"""Tasks with input files: an upload id, a URL (fetched once, at submit, through the URL guard) or a data: URI,
each stored as the task's own copy and used by the model (the local provider's outputs depend on the input's
pixels); every bad input refused at submit with its code and the parameter named, holding nothing."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from PIL import ImageStat

from api.deps import provide_auth
from shared.accounts.erasure import delete_account
from shared.accounts.keys import authenticate
from shared.accounts.signin import PasswordClient
from shared.services import Services
from shared.settings import Settings
from shared.tasks.retention import purge_task_data
from tests.conftest import AccountFactory
from tests.harness import InProcessWorker, wait_for
from tests.integration.helpers import balance, submit, wait_terminal
from tests.integration.media.conftest import MAX_BYTES, data_uri, image_bytes, opened, upload, uploaded_id
from tests.simulators import Simulators
from tests.simulators.media import mp4


async def fetch(url: str) -> bytes:
    async with httpx.AsyncClient() as anonymous:
        response = await anonymous.get(url)
    assert response.status_code == 200, url
    return response.content


def mean_colour(data: bytes) -> tuple[float, ...]:
    return tuple(ImageStat.Stat(opened(data).convert("RGB")).mean)


async def test_an_uploaded_image_is_restyled_and_the_output_follows_its_pixels(
    mclient: httpx.AsyncClient, make_account: AccountFactory, media_worker: InProcessWorker
) -> None:
    account = await make_account(credits="10")
    red, blue = image_bytes(320, 240, (220, 20, 20)), image_bytes(320, 240, (20, 20, 220))
    outputs = []
    for colour in (red, blue):
        upload_id = await uploaded_id(mclient, account, colour)
        response = await submit(mclient, account, "sdxl-img2img", prompt="a fox", image=upload_id, strength=0.2, seed=7)
        assert response.status_code == 202, response.text
        shown = response.json()["input"]["image"]
        assert (shown["source"], shown["upload_id"], shown["content_type"]) == ("upload", upload_id, "image/png")
        assert (shown["width"], shown["height"]) == (320, 240) and "key" not in shown
        assert await fetch(shown["url"]) == colour  # the task's own copy, served back
        done = await wait_terminal(mclient, account, response.json()["id"])
        assert done["status"] == "succeeded", done
        [output] = done["outputs"]
        assert (output["width"], output["height"]) == (320, 240)  # img2img keeps the input's size
        outputs.append(await fetch(output["url"]))
    red_out, blue_out = (mean_colour(data) for data in outputs)
    assert red_out[0] > red_out[2] + 60 and blue_out[2] > blue_out[0] + 60  # same prompt and seed, the input shows
    assert Decimal(str(done["credits"]["charged"])) == Decimal("0.4")


async def test_url_and_data_uri_inputs_are_fetched_once_at_submit(
    mclient: httpx.AsyncClient, make_account: AccountFactory, media_worker: InProcessWorker, sims: Simulators
) -> None:
    account = await make_account(credits="20")
    green = image_bytes(256, 256, (20, 200, 40), fmt="WEBP")
    url = sims.fal.host_file(f"{uuid.uuid4().hex}.bin", green, "application/octet-stream")  # the bytes decide
    by_url = await submit(mclient, account, "flux-kontext-pro", prompt="make it night", image=url)
    assert by_url.status_code == 202, by_url.text
    assert by_url.json()["input"]["image"]["source"] == "url"
    assert by_url.json()["input"]["image"]["content_type"] == "image/webp"
    sims.fal.files.clear()  # the URL stops working: the task has its own copy
    by_data = await submit(mclient, account, "flux-kontext-pro", prompt="make it night", image=data_uri(green, "x/y"))
    assert by_data.status_code == 202, by_data.text
    for response in (by_url, by_data):
        done = await wait_terminal(mclient, account, response.json()["id"])
        assert done["status"] == "succeeded", done
        assert (done["outputs"][0]["width"], done["outputs"][0]["height"]) == (256, 256)
        assert mean_colour(await fetch(done["outputs"][0]["url"]))[1] > 100  # still green underneath


async def test_an_edit_changes_only_the_masked_area(
    mclient: httpx.AsyncClient, make_account: AccountFactory, media_worker: InProcessWorker
) -> None:
    account = await make_account(credits="20")
    photo = image_bytes(200, 100, (30, 120, 200))
    mask = opened(image_bytes(200, 100, (0, 0, 0))).convert("L")  # black: keep; white: redraw
    mask.paste(0, (0, 0, 200, 100))
    mask.paste(255, (100, 0, 200, 100))  # the right half
    import io

    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    response = await submit(mclient, account, "flux-fill-pro", prompt="a red door", image=data_uri(photo),
                            mask=data_uri(buffer.getvalue()), seed=3)  # fmt: skip
    assert response.status_code == 202, response.text
    done = await wait_terminal(mclient, account, response.json()["id"])
    assert done["status"] == "succeeded", done
    result, source = opened(await fetch(done["outputs"][0]["url"])).convert("RGB"), opened(photo).convert("RGB")
    assert result.crop((0, 0, 100, 100)).tobytes() == source.crop((0, 0, 100, 100)).tobytes()  # untouched
    assert result.crop((100, 0, 200, 100)).tobytes() != source.crop((100, 0, 200, 100)).tobytes()  # redrawn

    small_mask = image_bytes(100, 100, (255, 255, 255))
    refused = await submit(
        mclient, account, "flux-fill-pro", prompt="x", image=data_uri(photo), mask=data_uri(small_mask)
    )
    assert refused.status_code == 400
    assert (refused.json()["error"]["code"], refused.json()["error"]["param"]) == ("mask_size_mismatch", "input.mask")


async def test_a_still_is_animated_and_charged_per_second(
    mclient: httpx.AsyncClient, make_account: AccountFactory, media_worker: InProcessWorker
) -> None:
    account = await make_account(credits="100")
    still = image_bytes(160, 120, (240, 200, 30))
    response = await submit(mclient, account, "wan-2.1-i2v", prompt="the sun rises", image=data_uri(still))
    assert response.status_code == 202, response.text
    assert response.json()["credits"]["held"] == 40  # 5 s x 8 credits
    done = await wait_terminal(mclient, account, response.json()["id"], timeout=60)
    assert done["status"] == "succeeded", done
    [video] = done["outputs"]
    assert (video["type"], video["content_type"], video["duration_s"]) == ("video", "image/gif", 5)
    assert (video["width"], video["height"]) == (160, 120)
    gif = opened(await fetch(video["url"]))
    assert getattr(gif, "n_frames", 1) == 80
    first = gif.convert("RGB")
    assert mean_colour_of(first)[0] > 180  # the still's yellow, animated
    assert done["credits"]["charged"] == 40


def mean_colour_of(image: object) -> tuple[float, ...]:
    return tuple(ImageStat.Stat(image).mean)  # type: ignore[arg-type]


async def test_an_upscale_is_priced_per_megapixel_of_the_result(
    mclient: httpx.AsyncClient, make_account: AccountFactory, media_worker: InProcessWorker
) -> None:
    account = await make_account(credits="10")
    small = image_bytes(500, 400, (90, 90, 90))
    response = await submit(mclient, account, "real-esrgan", image=data_uri(small), scale=2)
    assert response.status_code == 202, response.text
    # 1000 x 800 = 0.8 megapixels at 0.05 credits each
    assert Decimal(str(response.json()["credits"]["held"])) == Decimal("0.04")
    done = await wait_terminal(mclient, account, response.json()["id"])
    assert done["status"] == "succeeded", done
    assert (done["outputs"][0]["width"], done["outputs"][0]["height"]) == (1000, 800)
    assert Decimal(str(done["credits"]["charged"])) == Decimal("0.04")
    assert await balance(mclient, account) == (Decimal("9.96"), Decimal("0"))

    async def recorded() -> dict[str, Any] | None:
        summary = (await mclient.get("/v1/usage/summary", headers=account.headers)).json()
        return summary if summary["total"]["units"].get("megapixels") else None

    summary = await wait_for(recorded, timeout=10, what="the usage record")
    assert summary["total"]["units"]["megapixels"] == 0.8


async def test_every_bad_input_is_refused_at_submit_naming_the_parameter(
    mclient: httpx.AsyncClient,
    make_account: AccountFactory,
    sims: Simulators,
    media_settings: Settings,
    services: Services,
) -> None:
    account, other = await make_account(credits="5"), await make_account()
    foreign = await uploaded_id(mclient, other, image_bytes(64, 64, (1, 2, 3)))
    video = (await upload(mclient, account, mp4(320, 240, 2.0))).json()["id"]
    host = sims.fal.host_file
    cases = {
        "not a reference": ("ftp://example.com/a.png", "invalid_media"),
        "unknown upload": (f"upl_{uuid.uuid4().hex}", "upload_not_found"),
        "another account's upload": (foreign, "upload_not_found"),
        "a video for an image": (video, "media_type_not_allowed"),
        "text behind a URL": (host("notes.png", b"hello there", "image/png"), "media_type_not_allowed"),
        "too large": (
            host("big.png", image_bytes(8, 8, (0, 0, 0)) + b"\0" * MAX_BYTES, "image/png"),
            "media_too_large",
        ),
        "too many pixels": (host("wide.png", image_bytes(2100, 2000, (0, 0, 0)), "image/png"), "image_too_large"),
        "a 404": (f"{sims.fal.origin}/files/missing.png", "input_url_unreachable"),
        "nothing listening": ("http://127.0.0.1:9/a.png", "input_url_unreachable"),
        "a metadata address": ("http://169.254.169.254/latest/meta-data", "url_not_allowed"),
        "a private address": ("https://10.1.2.3/a.png", "url_not_allowed"),
        "credentials": ("https://user:pw@example.com/a.png", "invalid_input"),
        "a broken data URI": ("data:image/png;base64,@@@", "invalid_input"),
        "an empty data URI": ("data:image/png;base64,", "media_empty"),
    }
    folders_before = _input_folders(media_settings)
    for name, (value, code) in cases.items():
        response = await submit(mclient, account, "sdxl-img2img", prompt="x", image=value)
        assert response.status_code == 400, (name, response.text)
        error = response.json()["error"]
        assert (error["code"], error["param"]) == (code, "input.image"), (name, error)
    assert await balance(mclient, account) == (Decimal("5"), Decimal("0"))  # nothing held, no task made
    assert (await mclient.get("/v1/tasks", headers=account.headers)).json()["data"] == []
    assert not await services.db.fetchval("SELECT count(*) FROM tasks WHERE account_id = $1", account.id)
    assert _input_folders(media_settings) == folders_before  # no copy of a refused file is left behind


def _input_folders(settings: Settings) -> set[str]:
    inputs = Path(settings.resolved_storage_dir) / "inputs"
    return {path.name for path in inputs.iterdir()} if inputs.exists() else set()


async def test_forbidden_addresses_are_refused_before_any_connection(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    """The default API (no loopback): a URL to a listening loopback server is refused, and it sees no connection."""
    connections = 0

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(count, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    account = await make_account()
    try:
        for url in (f"http://127.0.0.1:{port}/a.png", f"http://localhost:{port}/a.png", f"http://[::1]:{port}/a.png"):
            response = await submit(client, account, "flux-kontext-pro", prompt="x", image=url)
            assert response.status_code == 400, response.text
            assert (response.json()["error"]["code"], response.json()["error"]["param"]) == (
                "url_not_allowed", "input.image",
            )  # fmt: skip
    finally:
        server.close()
        await server.wait_closed()
    assert connections == 0


async def test_inputs_outlive_their_upload_and_go_with_the_task_retention(
    mclient: httpx.AsyncClient, make_account: AccountFactory, services: Services, media_settings: Settings
) -> None:
    account = await make_account(credits="10")
    upload_id = await uploaded_id(mclient, account, image_bytes(128, 128, (200, 0, 200)))
    response = await submit(mclient, account, "flux-kontext-pro", prompt="x", image=upload_id)
    assert response.status_code == 202, response.text
    await mclient.delete(f"/v1/uploads/{upload_id}", headers=account.headers)  # the task keeps its own copy
    async with InProcessWorker(media_settings):
        done = await wait_terminal(mclient, account, response.json()["id"])
    assert done["status"] == "succeeded", done
    input_url = done["input"]["image"]["url"]
    assert opened(await fetch(input_url)).size == (128, 128)
    await services.db.execute(
        "UPDATE tasks SET completed_at = now() - interval '31 days' WHERE id = $1", uuid.UUID(done["id"])
    )
    while await purge_task_data(services.db, services.storage, retention_days=30):
        pass
    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.get(input_url)).status_code == 404
        assert (await anonymous.get(done["outputs"][0]["url"])).status_code == 404
    view = (await mclient.get(f"/v1/tasks/{done['id']}", headers=account.headers)).json()
    assert view["input"] == {}


async def test_deleting_the_account_removes_its_uploads_and_task_inputs(
    mclient: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    account = await make_account(credits="10")
    kept = (await upload(mclient, account, image_bytes(64, 64, (5, 5, 5)))).json()
    response = await submit(mclient, account, "flux-kontext-pro", prompt="x", image=kept["id"])
    input_url = response.json()["input"]["image"]["url"]
    assert opened(await fetch(input_url)).size == (64, 64)
    deps = provide_auth(services)  # the account services, as the API builds them
    principal = await authenticate(services.db, account.key)
    await delete_account(deps, services.queue, services.storage, principal, password=None,
                         client=PasswordClient(ip="127.0.0.1"))  # fmt: skip
    assert await services.db.fetchval("SELECT count(*) FROM media_uploads WHERE account_id = $1", account.id) == 0
    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.get(kept["url"])).status_code == 404
        assert (await anonymous.get(input_url)).status_code == 404


async def test_a_replayed_submit_returns_the_first_task_and_keeps_no_second_copy(
    mclient: httpx.AsyncClient, make_account: AccountFactory, media_settings: Settings
) -> None:
    account = await make_account(credits="10")
    body = {"model": "flux-kontext-pro", "input": {"prompt": "x", "image": data_uri(image_bytes(40, 30, (9, 9, 9)))}}
    headers = {**account.headers, "Idempotency-Key": f"k-{uuid.uuid4()}"}
    folders = _input_folders(media_settings)
    first = await mclient.post("/v1/tasks", json=body, headers=headers)
    again = await mclient.post("/v1/tasks", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"

    async def stored() -> set[str] | None:  # the first task's copy is written just after its answer
        made = _input_folders(media_settings) - folders
        return made if first.json()["id"] in made else None

    assert await wait_for(stored, timeout=10, what="the first copy") == {first.json()["id"]}  # none for the replay
    assert await balance(mclient, account) == (Decimal("6"), Decimal("4"))  # one hold


async def test_a_task_whose_input_files_are_gone_fails_without_charge(
    mclient: httpx.AsyncClient, make_account: AccountFactory, services: Services, media_settings: Settings
) -> None:
    """As when the API process stopped before writing them: the worker ends the task, its hold voided."""
    account = await make_account(credits="10")
    response = await submit(
        mclient, account, "flux-kontext-pro", prompt="x", image=data_uri(image_bytes(8, 8, (0, 0, 0)))
    )
    assert response.status_code == 202, response.text
    task_id = response.json()["id"]
    input_url = response.json()["input"]["image"]["url"]

    async def written() -> bool | None:  # the answer may come before the write ends
        return (await mclient.get(input_url)).status_code == 200 or None

    await wait_for(written, timeout=10, what="the input file to be written")
    await services.storage.delete_prefix(f"inputs/{task_id}")
    async with InProcessWorker(media_settings):
        done = await wait_terminal(mclient, account, task_id)
    assert (done["status"], done["error"]["code"], done["credits"]["charged"]) == ("failed", "input_missing", 0)
    assert await balance(mclient, account) == (Decimal("10"), Decimal("0"))


async def test_several_reference_images_are_each_used(
    mclient: httpx.AsyncClient, make_account: AccountFactory, media_worker: InProcessWorker
) -> None:
    account = await make_account(credits="40")
    red, blue = image_bytes(64, 48, (230, 20, 20)), image_bytes(64, 48, (20, 20, 230))
    upload_id = await uploaded_id(mclient, account, blue)
    outputs = []
    for images, sources in (
        ([data_uri(red), data_uri(red)], ["data", "data"]),
        ([data_uri(red), upload_id], ["data", "upload"]),
    ):
        response = await submit(mclient, account, "flux-kontext-multi", prompt="together", images=images, seed=1)
        assert response.status_code == 202, response.text
        assert [i["source"] for i in response.json()["input"]["images"]] == sources
        done = await wait_terminal(mclient, account, response.json()["id"])
        assert done["status"] == "succeeded", done
        outputs.append(mean_colour(await fetch(done["outputs"][0]["url"])))
    only_red, red_and_blue = outputs
    assert red_and_blue[2] > only_red[2] + 40  # the second image's blue shows

    refused = await submit(mclient, account, "flux-kontext-multi", prompt="x", images=[data_uri(red), "ftp://x/y.png"])
    assert (refused.json()["error"]["code"], refused.json()["error"]["param"]) == ("invalid_media", "input.images[1]")
    too_many = await submit(mclient, account, "flux-kontext-multi", prompt="x", images=[data_uri(red)] * 5)
    assert too_many.json()["error"]["param"] == "input.images"
    not_an_image = await submit(
        mclient, account, "flux-kontext-multi", prompt="x", images=[data_uri(red), data_uri(b"text", "text/plain")]
    )
    assert (not_an_image.json()["error"]["code"], not_an_image.json()["error"]["param"]) == (
        "media_type_not_allowed", "input.images[1]",
    )  # fmt: skip


async def test_a_url_that_does_not_answer_in_time_is_refused(
    mclient: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    """INPUT_URL_TIMEOUT_S (3 s here) bounds the whole fetch: a server that accepts and never answers."""
    accepted: list[asyncio.StreamWriter] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    account = await make_account()
    try:
        started = asyncio.get_running_loop().time()
        response = await submit(
            mclient, account, "flux-kontext-pro", prompt="x", image=f"http://127.0.0.1:{port}/a.png"
        )
        waited = asyncio.get_running_loop().time() - started
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("input_url_unreachable", "input.image")
    assert "did not answer within 3 s" in error["message"]
    assert accepted and 2.5 < waited < 20
