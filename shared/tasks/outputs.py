"""Normalising provider outputs and copying them into our storage (upstream URLs expire)."""

from __future__ import annotations

import uuid
from typing import Any

from shared.providers.base import Output, PermanentError
from shared.storage import EXTENSIONS, LocalStorage


def output_prefix(task_id: uuid.UUID) -> str:
    return f"outputs/{task_id}"


async def store_outputs(storage: LocalStorage, task_id: uuid.UUID, outputs: list[Output]) -> list[dict[str, Any]]:
    """Save each output's bytes under ``outputs/<task id>/`` and return the normalised output list
    (``type, key, content_type, width, height, duration_s, text``; the key becomes a signed URL on read)."""
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
        if output.data is not None:
            extension = EXTENSIONS.get(output.content_type or "")
            if extension is None:
                raise PermanentError(
                    f"the provider returned an unsupported content type {output.content_type!r}",
                    code="unsupported_output",
                )
            key = f"{output_prefix(task_id)}/{index}.{extension}"
            await storage.put(key, output.data)
            entry["key"] = key
        elif output.text is None:
            raise PermanentError("the provider returned an empty output", code="empty_output")
        stored.append(entry)
    return stored
