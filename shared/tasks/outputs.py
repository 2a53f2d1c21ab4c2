"""Normalising provider outputs and copying them into our storage (upstream URLs expire).

Each output's bytes come from the provider (``data``, e.g. decoded base64) or are downloaded from its
``url`` (bounded: see ``shared.providers.fetch``). Their type is decided by their content (magic bytes),
must fit the output's kind, and width / height / duration are measured from the file itself.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from shared.infra.storage import EXTENSIONS, LocalStorage
from shared.providers.base import Output, PermanentError, RetryableError
from shared.providers.fetch import OutputFetcher
from shared.providers.media import acceptable, measure, sniff
from shared.providers.retry import RetryPolicy, with_retries


def output_prefix(task_id: uuid.UUID) -> str:
    return f"outputs/{task_id}"


async def store_outputs(
    storage: LocalStorage,
    task_id: uuid.UUID,
    outputs: list[Output],
    *,
    fetcher: OutputFetcher | None = None,
    budget_s: float | None = None,
    on_stored: Callable[[int, dict[str, Any]], Awaitable[None]] | None = None,
) -> list[dict[str, Any]]:
    """Save each output's bytes under ``outputs/<task id>/`` and return the normalised output list
    (``type, key, content_type, width, height, duration_s, text``; the key becomes a signed URL on read).
    ``on_stored(index, output)`` is awaited after each output is stored.

    Downloads take at most ``fetcher.timeout_s`` each and ``budget_s`` in all."""
    loop = asyncio.get_running_loop()
    ends = loop.time() + budget_s if budget_s is not None else None
    stored: list[dict[str, Any]] = []
    for index, output in enumerate(outputs):
        entry: dict[str, Any] = {
            "type": output.type,
            "key": None,
            "content_type": output.content_type,
            "width": output.width,
            "height": output.height,
            "duration_s": output.duration_s,
            "text": output.text,
        }
        data = output.data
        if data is None and output.url is not None:
            if fetcher is None:
                raise PermanentError("this worker cannot download provider outputs", code="unsupported_output")
            budget = fetcher.timeout_s if ends is None else min(fetcher.timeout_s, ends - loop.time())
            if budget <= 0:
                raise RetryableError("no time was left to download the outputs", code="output_download_failed")
            retries = RetryPolicy(max_attempts=3, budget_s=budget)
            data = await with_retries(functools.partial(fetcher.fetch, output.url), retries)
        if data is not None:
            if fetcher is not None and len(data) > fetcher.max_bytes:
                raise fetcher.too_large()
            content_type = sniff(data)
            if content_type is None or not acceptable(output.type, content_type):
                raise PermanentError(
                    f"the provider returned a file that is not a supported {output.type}",
                    code="unsupported_output",
                )
            dimensions = await asyncio.to_thread(measure, data, content_type)
            entry["content_type"] = content_type
            entry["width"] = dimensions.width or output.width
            entry["height"] = dimensions.height or output.height
            # What the file holds is what was delivered (and is charged): the provider's figure only when the
            # file cannot be measured (WebM).
            entry["duration_s"] = dimensions.duration_s or output.duration_s
            key = f"{output_prefix(task_id)}/{index}.{EXTENSIONS[content_type]}"
            await storage.put(key, data)
            entry["key"] = key
        elif output.text is None:
            raise PermanentError("the provider returned an empty output", code="empty_output")
        stored.append(entry)
        if on_stored is not None:
            await on_stored(index, entry)
    return stored
