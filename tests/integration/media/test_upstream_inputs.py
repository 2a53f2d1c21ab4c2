"""Input files reach each upstream in the form its API documents: Replicate and fal fetch a signed, expiring
Conduit URL (or get the bytes inline as a data: URI when the route says so); OpenAI-compatible image edits get
multipart file parts. The simulators fetch or decode what they are sent, as the providers do."""

from __future__ import annotations

import re
import uuid
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.conftest import AccountFactory
from tests.harness import InProcessWorker
from tests.integration.helpers import submit, wait_terminal
from tests.integration.media.conftest import data_uri, image_bytes, uploaded_id
from tests.simulators import Simulators
from tests.simulators.base import Fault

SIGNED_INPUT = re.compile(r"http://127\.0\.0\.1:\d+/v1/files/inputs/([0-9a-f-]{36})/image\.png\?expires=\d+&signature=")


async def test_replicate_fetches_the_input_from_a_signed_expiring_conduit_url(
    mclient: httpx.AsyncClient, make_account: AccountFactory, media_worker: InProcessWorker, sims: Simulators
) -> None:
    account = await make_account(credits="10")
    photo = image_bytes(300, 200, (10, 200, 10))
    upload_id = await uploaded_id(mclient, account, photo)
    response = await submit(mclient, account, "test-up-replicate-edit", prompt="make it autumn", image=upload_id)
    assert response.status_code == 202, response.text
    done = await wait_terminal(mclient, account, response.json()["id"])
    assert done["status"] == "succeeded", done
    assert done["provider"] == "sim-replicate"
    [call] = sims.replicate.calls_to("create")
    sent = call.body["input"]
    assert sent["prompt"] == "make it autumn"
    match = SIGNED_INPUT.match(sent["input_image"])
    assert match is not None and match.group(1) == done["id"], sent  # the task's own copy, not the upload
    assert sims.replicate.received_files["input_image"] == photo  # Replicate could fetch it
    query = parse_qs(urlsplit(sent["input_image"]).query)
    signature = query["signature"][0]
    other = "y" if signature[0] == "x" else "x"  # a different first character, whatever the signature's is
    tampered = sent["input_image"].replace(signature, other + signature[1:])
    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.get(tampered)).status_code == 404  # the signature is what opens it


async def test_fal_gets_inline_data_uris_when_the_route_says_so(
    mclient: httpx.AsyncClient, make_account: AccountFactory, media_worker: InProcessWorker, sims: Simulators
) -> None:
    account = await make_account(credits="10")
    photo, mask = image_bytes(64, 48, (200, 10, 10), fmt="JPEG"), image_bytes(64, 48, (255, 255, 255))
    response = await submit(mclient, account, "test-up-fal-fill", prompt="a cat", image=data_uri(photo),
                            mask=data_uri(mask))  # fmt: skip
    assert response.status_code == 202, response.text
    done = await wait_terminal(mclient, account, response.json()["id"])
    assert done["status"] == "succeeded", done
    [call] = sims.fal.calls_to("submit")
    assert call.body["image_url"].startswith("data:image/jpeg;base64,")
    assert call.body["mask_url"].startswith("data:image/png;base64,")
    assert sims.fal.received_files == {"image_url": photo, "mask_url": mask}


async def test_fal_image_to_video_fetches_the_still(
    mclient: httpx.AsyncClient, make_account: AccountFactory, media_worker: InProcessWorker, sims: Simulators
) -> None:
    account = await make_account(credits="10")
    still = image_bytes(320, 180, (0, 0, 0))
    url = sims.replicate.host_file(f"{uuid.uuid4().hex}.png", still, "image/png")
    response = await submit(mclient, account, "test-up-fal-i2v", prompt="waves", image=url, duration_s=2)
    assert response.status_code == 202, response.text
    done = await wait_terminal(mclient, account, response.json()["id"])
    assert done["status"] == "succeeded", done
    [call] = sims.fal.calls_to("submit")
    assert call.body["duration"] == 2 and call.body["image_url"] != url  # Conduit's copy, not the user's URL
    assert SIGNED_INPUT.match(call.body["image_url"])
    assert sims.fal.received_files["image_url"] == still


async def test_an_upstream_that_cannot_fetch_the_input_fails_the_task_without_charge(
    mclient: httpx.AsyncClient, make_account: AccountFactory, media_worker: InProcessWorker, sims: Simulators
) -> None:
    account = await make_account(credits="10")
    sims.replicate.fail("create", Fault(422, body={"detail": "- input: input_image: could not fetch"}))
    response = await submit(
        mclient, account, "test-up-replicate-edit", prompt="x", image=data_uri(image_bytes(8, 8, (1, 1, 1)))
    )
    done = await wait_terminal(mclient, account, response.json()["id"])
    assert done["status"] == "failed" and done["credits"]["charged"] == 0


async def test_openai_compatible_edits_receive_multipart_files(
    mclient: httpx.AsyncClient, make_account: AccountFactory, media_worker: InProcessWorker, sims: Simulators
) -> None:
    account = await make_account(credits="10")
    photo, mask = image_bytes(256, 128, (0, 0, 255)), image_bytes(256, 128, (0, 0, 0), mode="RGBA")
    response = await submit(mclient, account, "test-up-image-edit", prompt="add a moon", image=data_uri(photo),
                            mask=data_uri(mask), num_images=2)  # fmt: skip
    assert response.status_code == 202, response.text
    done = await wait_terminal(mclient, account, response.json()["id"])
    assert done["status"] == "succeeded", done
    assert done["provider"] == "sim-openai"
    assert [(o["width"], o["height"]) for o in done["outputs"]] == [(256, 128), (256, 128)]
    [(fields, files)] = sims.openai.image_edits
    assert fields == {"model": "sim-image-edit", "prompt": "add a moon", "n": "2"}
    assert files["image"] == ("image.png", "image/png", photo)
    assert files["mask"] == ("mask.png", "image/png", mask)
    assert done["credits"]["charged"] == 2


async def test_the_model_page_says_how_each_route_sends_files(mclient: httpx.AsyncClient) -> None:
    model = (await mclient.get("/v1/models/flux-fill-pro")).json()
    routes = {route["provider"]: route["parameters"] for route in model["routes"]}
    assert routes["replicate"]["mask"] == {"as": "mask", "sent_as": "url"}
    assert routes["fal"]["image"] == {"as": "image_url", "sent_as": "url"}
    assert "sent_as" not in routes["local"]["image"]
    assert model["parameters"]["mask"] == {
        "type": "mask", "required": True, "description": "Same size as the image; white marks the area to redraw.",
    }  # fmt: skip
    edit = (await mclient.get("/v1/models/gpt-image-1-edit")).json()
    assert edit["routes"][0]["parameters"]["image"]["sent_as"] == "multipart"
