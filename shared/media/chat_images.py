"""The image parts of chat messages (``{"type": "image_url", "image_url": {"url": …}}``), inlined before the
request goes upstream: each ``url`` — an https URL, a ``data:`` URI, or an upload id (``upl_…``) — is fetched
through the URL guard (``shared.media.sources``), checked by its bytes (an image, within the size and pixel
caps) and replaced by a ``data:`` URI of exactly those bytes. Upstreams never fetch a user's URL, and what they
see is what was checked. A refusal names the part (``messages[0].content[1].image_url``).
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

from shared.media.sources import MediaSources


async def inline_chat_images(sources: MediaSources, account_id: uuid.UUID, calls_params: list[dict[str, Any]]) -> None:
    """Replace, in place, the URL of every image part of each call's ``messages`` by a checked data: URI (the
    candidates of one request share their messages' images: each is fetched once)."""
    inlined: dict[str, str] = {}
    for params in calls_params:
        for index, message in enumerate(params.get("messages") or []):
            content = message.get("content")
            if not isinstance(content, list):
                continue
            for part_index, part in enumerate(content):
                if not isinstance(part, dict) or part.get("type") != "image_url":
                    continue
                url = part["image_url"]["url"]
                if url not in inlined:
                    param = f"messages[{index}].content[{part_index}].image_url"
                    loaded = await sources.load(account_id, url, param=param, kind="image")
                    data = await sources.read(loaded)
                    inlined[url] = f"data:{loaded.info.content_type};base64,{base64.b64encode(data).decode()}"
                part["image_url"] = {**part["image_url"], "url": inlined[url]}
