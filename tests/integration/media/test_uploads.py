"""/v1/uploads: the type judged from the bytes, the caps (size, pixels, decompression bombs), the account's
quota, the owner alone seeing an upload, deletion, and the retention sweep."""

from __future__ import annotations

import asyncio
import io
import random
import struct
import zlib

import httpx
from PIL import Image

from shared.media.uploads import purge_expired_uploads
from shared.services import Services
from tests.conftest import AccountFactory
from tests.integration.media.conftest import MAX_BYTES, QUOTA_BYTES, image_bytes, opened, upload
from tests.simulators.media import mp4


def bomb_png(width: int, height: int) -> bytes:
    """A small PNG declaring a huge image: an IHDR of that size and a few compressed bytes of pixel data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
        + chunk(b"IEND", b"")
    )


async def test_an_upload_is_typed_by_its_bytes_measured_and_served_back(
    mclient: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    jpeg = image_bytes(320, 200, (200, 30, 30), fmt="JPEG")
    response = await upload(mclient, account, jpeg, name="looks-like.gif")  # the name says nothing
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("upl_") and body["object"] == "upload"
    assert (body["content_type"], body["bytes"], body["width"], body["height"]) == ("image/jpeg", len(jpeg), 320, 200)
    assert body["duration_s"] is None and body["expires_at"] > body["created_at"]
    async with httpx.AsyncClient() as anonymous:
        file = await anonymous.get(body["url"])
    assert file.status_code == 200 and file.content == jpeg

    video = mp4(640, 360, 4.5)
    answer = (await upload(mclient, account, video, name="clip.png")).json()
    assert (answer["content_type"], answer["width"], answer["height"], answer["duration_s"]) == (
        "video/mp4", 640, 360, 4.5,
    )  # fmt: skip

    listed = (await mclient.get("/v1/uploads", headers=account.headers)).json()
    assert [u["id"] for u in listed["data"]] == [answer["id"], body["id"]]  # newest first
    first = (await mclient.get("/v1/uploads?limit=1", headers=account.headers)).json()
    assert first["has_more"] and first["next_cursor"] == answer["id"]
    rest = (await mclient.get(f"/v1/uploads?limit=1&after={answer['id']}", headers=account.headers)).json()
    assert [u["id"] for u in rest["data"]] == [body["id"]] and not rest["has_more"]
    assert (await mclient.get(f"/v1/uploads/{body['id']}", headers=account.headers)).json()["bytes"] == len(jpeg)


async def test_files_that_are_not_accepted_media_are_refused_naming_the_field(
    mclient: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    cases = {
        "text": (b"just some text", 400, "media_type_not_allowed"),
        "svg named png": (svg, 400, "media_type_not_allowed"),
        "png header only": (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, 400, "media_type_not_allowed"),
        "empty": (b"", 400, "media_empty"),
        "bomb": (bomb_png(30_000, 30_000), 400, "image_too_large"),
        "too many pixels": (image_bytes(2100, 2000, (0, 0, 0)), 400, "image_too_large"),
    }
    for name, (data, status, code) in cases.items():
        response = await upload(mclient, account, data, name="image.png")
        assert response.status_code == status, (name, response.text)
        assert response.json()["error"]["code"] == code, name
        assert response.json()["error"]["param"] == "file", name
    response = await upload(mclient, account, image_bytes(8, 8, (0, 0, 0)) + b"\0" * MAX_BYTES)  # over the cap
    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == ("media_too_large", "file")
    wrong_field = await mclient.post(
        "/v1/uploads", files={"image": ("a.png", image_bytes(8, 8, (0, 0, 0)), "image/png")}, headers=account.headers
    )
    assert wrong_field.status_code == 400 and wrong_field.json()["error"]["param"] == "image"
    not_multipart = await mclient.post("/v1/uploads", json={"file": "x"}, headers=account.headers)
    assert not_multipart.status_code == 415
    assert (await mclient.get("/v1/uploads", headers=account.headers)).json()["data"] == []


async def test_only_the_owner_sees_reads_or_deletes_an_upload(
    mclient: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    owner, other = await make_account(), await make_account()
    created = (await upload(mclient, owner, image_bytes(64, 64, (0, 90, 200)))).json()
    for method in ("GET", "DELETE"):
        response = await mclient.request(method, f"/v1/uploads/{created['id']}", headers=other.headers)
        assert response.status_code == 404 and response.json()["error"]["code"] == "upload_not_found"
    assert (await mclient.get("/v1/uploads", headers=other.headers)).json()["data"] == []
    assert (await mclient.get("/v1/uploads/upl_nonsense", headers=owner.headers)).status_code == 404

    deleted = await mclient.delete(f"/v1/uploads/{created['id']}", headers=owner.headers)
    assert deleted.status_code == 200 and deleted.json() == {"id": created["id"], "object": "upload", "deleted": True}
    assert (await mclient.get(f"/v1/uploads/{created['id']}", headers=owner.headers)).status_code == 404
    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.get(created["url"])).status_code == 404  # the file is gone too


async def test_the_quota_holds_against_concurrent_uploads(
    mclient: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    noisy = Image.frombytes("RGB", (600, 600), random.Random(1).randbytes(600 * 600 * 3))
    buffer = io.BytesIO()
    noisy.save(buffer, format="PNG")
    file = buffer.getvalue()
    each = len(file)
    fits = QUOTA_BYTES // each
    responses = await asyncio.gather(*(upload(mclient, account, file) for _ in range(fits + 2)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * fits + [400, 400], [r.text for r in responses if r.status_code != 201]
    refused = next(r for r in responses if r.status_code == 400).json()["error"]
    assert (refused["code"], refused["param"]) == ("upload_quota_exceeded", "file")
    listed = (await mclient.get("/v1/uploads?limit=100", headers=account.headers)).json()["data"]
    assert sum(u["bytes"] for u in listed) <= QUOTA_BYTES and len(listed) == fits


async def test_expired_uploads_are_purged_with_their_files(
    mclient: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    account = await make_account()
    old = (await upload(mclient, account, image_bytes(32, 32, (10, 10, 10)))).json()
    kept = (await upload(mclient, account, image_bytes(32, 32, (20, 20, 20)))).json()
    await services.db.execute(
        "UPDATE media_uploads SET expires_at = now() - interval '1 second' WHERE id = $1::uuid", old["id"][4:]
    )
    assert (await mclient.get(f"/v1/uploads/{old['id']}", headers=account.headers)).status_code == 404  # expired
    purged = await asyncio.gather(*(purge_expired_uploads(services.db, services.storage) for _ in range(3)))
    assert sum(purged) >= 1
    assert await services.db.fetchval("SELECT count(*) FROM media_uploads WHERE id = $1::uuid", old["id"][4:]) == 0
    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.get(old["url"])).status_code == 404
        assert opened((await anonymous.get(kept["url"])).content).size == (32, 32)
