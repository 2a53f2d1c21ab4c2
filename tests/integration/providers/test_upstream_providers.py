"""Tasks served by real upstream protocols (simulated over HTTP): OpenAI-compatible, Replicate and fal.

Each test goes through the public API and an arq worker, and checks what a client would notice: the
outputs (downloadable from our storage, with measured sizes), the provider that served the task, the
charge computed from the upstream's usage, and what the upstream was actually sent.
"""

from __future__ import annotations

import io
import json
import uuid
from decimal import Decimal

import httpx
from PIL import Image

from shared.services import Services
from tests.conftest import AccountFactory
from tests.harness import InProcessWorker, wait_for
from tests.integration.helpers import balance, submit, task, wait_terminal
from tests.simulators import Simulators


async def download(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as anonymous:
        return await anonymous.get(url)


async def test_chat_on_an_openai_compatible_upstream_is_charged_for_the_reported_tokens(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker, sims: Simulators
) -> None:
    account = await make_account(credits="10")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name three lighthouses"}]
    response = await submit(client, account, "test-up-chat", messages=messages, max_tokens=100, temperature=0.2)
    assert response.status_code == 202, response.text
    held = Decimal(str(response.json()["credits"]["held"]))

    done = await wait_terminal(client, account, response.json()["id"])
    assert done["status"] == "succeeded", done
    assert done["provider"] == "sim-openai"
    assert done["outputs"][0]["type"] == "text"
    assert done["outputs"][0]["text"] == "Simulated reply to: Name three lighthouses"

    [call] = sims.openai.calls_to("chat")
    assert call.headers["authorization"] == "Bearer sk-sim-openai"
    assert call.body == {
        "model": "sim-llama-8b",
        "messages": messages,
        "max_tokens": 100,
        "temperature": 0.2,
        "stream": False,
    }
    [usage] = sims.openai.usages
    # 1000 credits per 1M input tokens, 2000 per 1M output tokens.
    expected = Decimal(usage["prompt_tokens"] * 1000 + usage["completion_tokens"] * 2000) / 1_000_000
    assert Decimal(str(done["credits"]["charged"])) == expected
    assert 0 < expected < held
    assert await balance(client, account) == (Decimal("10") - expected, Decimal("0"))


async def test_base64_images_from_an_openai_compatible_upstream_are_stored_and_measured(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker, sims: Simulators
) -> None:
    account = await make_account(credits="10")
    response = await submit(client, account, "test-up-image-b64", prompt="two foxes", width=512, height=384,
                            num_images=2, seed=5)  # fmt: skip
    done = await wait_terminal(client, account, response.json()["id"])
    assert done["status"] == "succeeded", done
    assert len(done["outputs"]) == 2
    for output in done["outputs"]:
        assert (output["type"], output["content_type"]) == ("image", "image/png")
        assert (output["width"], output["height"]) == (512, 384)
        file = await download(output["url"])
        assert file.status_code == 200
        assert Image.open(io.BytesIO(file.content)).size == (512, 384)
    [call] = sims.openai.calls_to("images")
    assert call.body == {"model": "sim-image", "prompt": "two foxes", "n": 2, "size": "512x384", "seed": 5,
                         "response_format": "b64_json"}  # fmt: skip
    assert done["credits"] == {"held": 1, "charged": 1}


async def test_image_urls_are_copied_into_our_storage_and_outlive_the_upstream_url(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker, sims: Simulators
) -> None:
    account = await make_account(credits="10")
    response = await submit(client, account, "test-up-image-url", prompt="a harbour", width=640, height=480)
    done = await wait_terminal(client, account, response.json()["id"])
    assert done["status"] == "succeeded", done
    [output] = done["outputs"]
    # The simulator served the file as application/octet-stream: the type was judged from the bytes.
    assert output["content_type"] == "image/png"
    assert (output["width"], output["height"]) == (640, 480)
    assert output["url"].startswith(f"http://127.0.0.1:{client.base_url.port}/v1/files/outputs/")
    [call] = sims.openai.calls_to("images")
    assert call.body["response_format"] == "url"
    assert (call.body["width"], call.body["height"]) == (640, 480)

    sims.openai.files.clear()  # the upstream URL expires
    file = await download(output["url"])
    assert file.status_code == 200 and file.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(file.content)).size == (640, 480)


async def test_a_replicate_prediction_is_created_once_polled_and_its_outputs_kept(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    worker: InProcessWorker,
    sims: Simulators,
    services: Services,
) -> None:
    account = await make_account(credits="10")
    response = await submit(client, account, "test-up-replicate", prompt="a tower", num_images=2, seed=7)
    done = await wait_terminal(client, account, response.json()["id"])
    assert done["status"] == "succeeded", done
    assert done["provider"] == "sim-replicate"
    assert done["progress"] is None
    assert [(o["content_type"], o["width"], o["height"]) for o in done["outputs"]] == [("image/png", 1024, 1024)] * 2
    assert "requested" not in done["outputs"][0]  # delivered as asked
    assert done["credits"] == {"held": 1.5, "charged": 1.5}

    [create] = sims.replicate.calls_to("create")
    assert create.path == "/v1/models/sim/flux/predictions"
    assert create.headers["authorization"] == "Bearer r8_sim"
    # The route makes 1024x1024 only, through its fixed aspect ratio; every other parameter arrives mapped.
    assert create.body["input"] == {"prompt": "a tower", "num_outputs": 2, "seed": 7, "aspect_ratio": "1:1"}
    [prediction_id] = sims.replicate.predictions
    polls = sims.replicate.calls_to("get")
    assert polls and {call.path for call in polls} == {f"/v1/predictions/{prediction_id}"}
    row = await services.db.fetchrow(
        "SELECT upstream_id, units FROM tasks JOIN usage_records u ON u.task_id = tasks.id WHERE tasks.id = $1",
        uuid.UUID(done["id"]),
    )
    assert row is not None and row["upstream_id"] == prediction_id
    assert '"upstream_seconds": 1.017' in row["units"]  # Replicate's metrics.predict_time


async def test_a_fal_queue_request_is_submitted_polled_and_its_result_fetched(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker, sims: Simulators
) -> None:
    account = await make_account(credits="10")
    response = await submit(client, account, "test-up-fal-image", prompt="a moth", width=768, height=512)
    done = await wait_terminal(client, account, response.json()["id"])
    assert done["status"] == "succeeded", done
    assert done["provider"] == "sim-fal"
    [output] = done["outputs"]
    assert (output["width"], output["height"], output["content_type"]) == (768, 512, "image/png")
    assert done["credits"] == {"held": 0.25, "charged": 0.25}

    [submitted] = sims.fal.calls_to("submit")
    assert submitted.path == "/fal-ai/flux/dev"
    assert submitted.headers["authorization"] == "Key fal-sim-key"
    assert submitted.body["image_size"] == {"width": 768, "height": 512}
    [request_id] = sims.fal.requests
    assert {c.path for c in sims.fal.calls_to("status")} == {f"/fal-ai/flux/requests/{request_id}/status"}
    assert [c.path for c in sims.fal.calls_to("result")] == [f"/fal-ai/flux/requests/{request_id}"]


async def test_a_video_is_charged_for_the_seconds_actually_delivered(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    worker: InProcessWorker,
    sims: Simulators,
    services: Services,
) -> None:
    account = await make_account(credits="20")
    response = await submit(client, account, "test-up-fal-video", prompt="waves", duration_s=3, width=320, height=192)
    assert response.json()["credits"]["held"] == 6
    done = await wait_terminal(client, account, response.json()["id"])
    assert done["status"] == "succeeded", done
    [output] = done["outputs"]
    assert output["type"] == "video" and output["content_type"] == "video/mp4"
    # The simulator delivers half a second less than asked; the MP4's own header says so, and so does the task.
    assert (output["width"], output["height"], output["duration_s"]) == (320, 192, 2.5)
    assert output["requested"] == {"duration_s": 3}
    assert done["credits"] == {"held": 6, "charged": 5}
    assert (await download(output["url"])).content[4:8] == b"ftyp"
    [submitted] = sims.fal.calls_to("submit")
    assert submitted.body == {"prompt": "waves", "duration": 3, "fps": 8, "width": 320, "height": 192}
    assert await balance(client, account) == (Decimal("15"), Decimal("0"))
    assert await usage_units(services, done["id"]) == {
        "video_seconds": 2.5, "video_seconds_requested": 3.0, "requests": 1
    }  # fmt: skip


async def test_a_video_longer_than_asked_is_charged_for_what_was_asked_at_most(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    worker: InProcessWorker,
    sims: Simulators,
    services: Services,
) -> None:
    account = await make_account(credits="20")
    response = await submit(client, account, "test-up-fal-video-long", prompt="waves", duration_s=2)
    done = await wait_terminal(client, account, response.json()["id"])
    assert done["status"] == "succeeded", done
    [output] = done["outputs"]
    assert output["duration_s"] == 2.5 and output["requested"] == {"duration_s": 2}
    assert done["credits"] == {"held": 4, "charged": 4}  # the hold, not the 5 that 2.5 s would cost
    assert await balance(client, account) == (Decimal("16"), Decimal("0"))
    assert await usage_units(services, done["id"]) == {
        "video_seconds": 2.0, "video_seconds_delivered": 2.5, "requests": 1
    }  # fmt: skip


async def usage_units(services: Services, task_id: str) -> dict[str, object]:
    units = await services.db.fetchval("SELECT units FROM usage_records WHERE task_id = $1", uuid.UUID(task_id))
    found: dict[str, object] = json.loads(units)
    return found


async def test_progress_is_shown_while_the_upstream_job_runs(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker, sims: Simulators
) -> None:
    account = await make_account(credits="10")
    fal_task = (await submit(client, account, "test-up-fal-slow", prompt="slow moth")).json()["id"]
    replicate_task = (await submit(client, account, "test-up-replicate-slow", prompt="slow tower")).json()["id"]
    seen: dict[str, list[dict[str, object]]] = {fal_task: [], replicate_task: []}

    async def both_finished() -> bool:
        finished = True
        for task_id, progress in seen.items():
            body = await task(client, account, task_id)
            if body["progress"]:
                progress.append(body["progress"])
            finished = finished and body["status"] == "succeeded"
        return finished

    await wait_for(both_finished, timeout=60, interval=0.2, what="both slow tasks")
    assert {"upstream_status": "IN_QUEUE", "queue_position": 3} in seen[fal_task]
    # the count of log lines told so far (the lines themselves go to the task's event stream)
    assert any(p["upstream_status"] == "IN_PROGRESS" and bool(p["log_lines"]) for p in seen[fal_task])
    statuses = {p["upstream_status"] for p in seen[replicate_task]}
    assert "processing" in statuses
    assert any(isinstance(p.get("percent"), int) for p in seen[replicate_task])
    for task_id in seen:
        assert (await task(client, account, task_id))["progress"] is None  # cleared once finished


async def test_models_without_usable_routes_are_unavailable_and_refused(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker
) -> None:
    models = {m["id"]: m for m in (await client.get("/v1/models")).json()["data"]}
    assert models["test-up-nokey"]["available"] is False
    assert models["test-up-nokey-then-local"]["available"] is True
    assert models["test-up-chat"]["available"] is True
    assert (await client.get("/v1/models/test-up-nokey")).json()["available"] is False

    account = await make_account(credits="1")
    refused = await submit(client, account, "test-up-nokey", messages=[{"role": "user", "content": "hi"}])
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "model_unavailable"
    assert await balance(client, account) == (Decimal("1"), Decimal("0"))

    served = await submit(client, account, "test-up-nokey-then-local", messages=[{"role": "user", "content": "hi"}])
    done = await wait_terminal(client, account, served.json()["id"])
    assert (done["status"], done["provider"]) == ("succeeded", "local")


async def test_a_parameter_a_route_cannot_honour_moves_the_request_to_one_that_can(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker, sims: Simulators
) -> None:
    account = await make_account(credits="10")
    default_size = await submit(client, account, "test-up-fixed-size-then-fal", prompt="a harbour")
    other_size = await submit(client, account, "test-up-fixed-size-then-fal", prompt="a harbour", width=512)
    first = await wait_terminal(client, account, default_size.json()["id"])
    second = await wait_terminal(client, account, other_size.json()["id"])
    assert (first["status"], first["provider"]) == ("succeeded", "sim-replicate")
    assert (second["status"], second["provider"]) == ("succeeded", "sim-fal")
    assert (second["outputs"][0]["width"], second["outputs"][0]["height"]) == (512, 1024)
    [created] = sims.replicate.calls_to("create")  # only the request at the size Replicate makes went there
    assert created.body["input"]["aspect_ratio"] == "1:1" and "width" not in created.body["input"]
    [submitted] = sims.fal.calls_to("submit")
    assert submitted.body["image_size"] == {"width": 512, "height": 1024}


async def test_a_request_no_route_can_honour_is_refused_naming_the_parameter(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker, sims: Simulators
) -> None:
    account = await make_account(credits="10")
    refused = await submit(client, account, "test-up-replicate", prompt="a tower", width=1024, height=576)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "invalid_input", "input.height")
    assert "sim-replicate only makes height = 1024" in error["message"]
    assert await balance(client, account) == (Decimal("10"), Decimal("0"))
    assert sims.replicate.calls_to("create") == []


async def test_the_model_lists_each_route_and_how_it_takes_each_parameter(client: httpx.AsyncClient) -> None:
    model = (await client.get("/v1/models/test-up-fixed-size-then-fal")).json()
    assert model["parameters"]["width"]["only_on"] == {"sim-replicate": 1024}
    replicate, fal = model["routes"]
    assert replicate == {
        "provider": "sim-replicate",
        "model": "sim/flux",
        "available": True,
        "parameters": {
            "prompt": {"as": "prompt"}, "width": {"fixed": 1024}, "height": {"fixed": 1024},
            "num_images": {"as": "num_outputs"}, "seed": {"as": "seed"},
        },
    }  # fmt: skip
    assert fal["parameters"]["width"] == {"as": "image_size.width"}
    assert "base_url" not in str(model) and "KEY" not in str(model)
    shipped = (await client.get("/v1/models/ltx-video")).json()
    [replicate_ltx] = [route for route in shipped["routes"] if route["provider"] == "replicate"]
    assert replicate_ltx["available"] is False  # no Replicate token in the tests
    assert replicate_ltx["parameters"]["duration_s"] == {
        "as": "num_frames", "converted": "frames = seconds x fps + 1"
    }  # fmt: skip
    page = await client.get("/models/test-up-fixed-size-then-fal")
    assert page.status_code == 200
    assert 'data-provider="sim-replicate"' in page.text and 'data-provider="sim-fal"' in page.text
    assert "sim-replicate makes only 1024" in page.text and "as <code>image_size.width</code>" in page.text
    assert (await client.get("/models/no-such-model")).status_code == 404


async def test_fewer_images_than_asked_are_charged_as_delivered(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    worker: InProcessWorker,
    sims: Simulators,
    services: Services,
) -> None:
    sims.fal.nsfw_images = {1}  # fal blacks out the second image: it is not delivered
    account = await make_account(credits="10")
    response = await submit(client, account, "test-up-fal-image", prompt="two moths", num_images=2, width=256)
    assert response.json()["credits"]["held"] == 0.5
    done = await wait_terminal(client, account, response.json()["id"])
    assert done["status"] == "succeeded", done
    [output] = done["outputs"]
    assert output["requested"] == {"num_images": 2}
    assert done["credits"] == {"held": 0.5, "charged": 0.25}
    assert await balance(client, account) == (Decimal("9.75"), Decimal("0"))
    assert await usage_units(services, done["id"]) == {"images": 1, "images_requested": 2, "requests": 1}
