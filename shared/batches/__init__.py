"""The OpenAI Batch API: files (``files``), batches and their lines (``batches``), and the batch job that runs
the lines as batch work at the models' batch discount (``runner``).

Ids are OpenAI-shaped (``file-<hex>``, ``batch_<hex>``) over the rows' UUIDs (``public_id`` / ``parse_id``).
"""

from __future__ import annotations

import uuid

FILE_PREFIX = "file-"
BATCH_PREFIX = "batch_"
ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings")


def public_id(prefix: str, row_id: uuid.UUID) -> str:
    return f"{prefix}{row_id.hex}"


def parse_id(prefix: str, value: str | None) -> uuid.UUID | None:
    """The row id of an OpenAI-shaped id; None when ``value`` is not one."""
    if not value or not value.startswith(prefix) or len(value) != len(prefix) + 32:
        return None
    try:
        return uuid.UUID(hex=value[len(prefix) :])
    except ValueError:
        return None
