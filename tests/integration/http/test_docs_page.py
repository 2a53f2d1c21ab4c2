"""``/docs`` loads everything it needs from Conduit itself (the browser test in ``tests/e2e`` renders it with every
other host blocked)."""

from __future__ import annotations

import re

import httpx

from api.docs_page import ASSETS


async def test_docs_page_refers_only_to_files_this_server_serves(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert len(urls) == 4, urls  # the script, the preset, the stylesheet and the icon
    for url in urls:
        assert url.startswith(f"/docs{ASSETS}/"), url  # this server's path, never another host
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert "max-age=31536000" in asset.headers["cache-control"]
    assert "SwaggerUIBundle" in (await client.get(f"/docs{ASSETS}/swagger-ui-bundle.js")).text
    assert (await client.get(f"/docs{ASSETS}/no-such-file.js")).status_code == 404
