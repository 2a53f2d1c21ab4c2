"""Ticket attachments are judged by their bytes, never by their names: HTML or SVG named ``.png`` is refused,
so is a PNG decompression bomb; a real PNG, JPEG, PDF and log are kept and served back only as downloads."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import AccountFactory
from tests.files import image_bytes, png_bomb

HTML = b"<!DOCTYPE html><html><body><script>fetch('/v1/keys')</script></body></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.domain)"><circle r="9"/></svg>'


async def _open_with(client: httpx.AsyncClient, headers: dict[str, str], *files: tuple[str, bytes]) -> httpx.Response:
    return await client.post(
        "/v1/support/tickets",
        data={"subject": "Attached", "category": "technical", "body": "See the files."},
        files=[("files", (name, data, "image/png")) for name, data in files],
        headers=headers,
    )


@pytest.mark.parametrize(("name", "data"), [("page.png", HTML), ("drawing.png", SVG), ("drawing.svg", SVG)])
async def test_html_and_svg_named_png_are_refused(
    client: httpx.AsyncClient, make_account: AccountFactory, name: str, data: bytes
) -> None:
    user = await make_account()
    response = await _open_with(client, user.headers, ("shot.png", image_bytes("PNG")), (name, data))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("attachment_type_not_allowed", "files[1]")
    assert "not HTML, SVG or other markup" in error["message"]
    listed = await client.get("/v1/support/tickets", headers=user.headers)
    assert listed.json()["data"] == []  # nothing of the refused ticket was kept


async def test_a_png_decompression_bomb_is_refused(client: httpx.AsyncClient, make_account: AccountFactory) -> None:
    user = await make_account()
    bomb = png_bomb(100_000, 100_000)  # ten billion pixels in a few kilobytes
    response = await _open_with(client, user.headers, ("cat.png", bomb))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("image_too_large", "files[0]")
    assert "more than 25,000,000 pixels" in error["message"]


async def test_a_png_jpeg_pdf_and_log_are_kept_and_served_as_downloads(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    user = await make_account()
    files = {
        "screen.png": (image_bytes("PNG", (1280, 720)), "image/png"),
        "photo.jpg": (image_bytes("JPEG", (800, 600)), "image/jpeg"),
        "invoice.pdf": (image_bytes("PDF"), "application/pdf"),
        "worker.log": (b"2026-11-22 12:00:01 ERROR task 42 failed: <timeout>\n", "text/plain; charset=utf-8"),
    }
    response = await _open_with(client, user.headers, *((name, data) for name, (data, _) in files.items()))
    assert response.status_code == 201, response.text
    kept: list[dict[str, Any]] = response.json()["messages"][0]["attachments"]
    assert [(f["filename"], f["content_type"]) for f in kept] == [
        (name, content_type.split(";")[0]) for name, (_, content_type) in files.items()
    ]
    for attachment, (data, content_type) in zip(kept, files.values(), strict=True):
        download = await client.get(attachment["url"], headers=user.headers)
        assert download.status_code == 200 and download.content == data
        assert download.headers["content-type"] == content_type
        assert download.headers["content-disposition"].startswith("attachment")
        assert download.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in download.headers["content-security-policy"]
