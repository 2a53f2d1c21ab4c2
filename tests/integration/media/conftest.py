"""Fixtures for the input media tests: an API and a worker whose URL guard lets input URLs reach loopback
(URL_GUARD_ALLOW_LOOPBACK=true: the simulators that serve test files listen there), with small caps so that the
limits are quick to reach, and helpers that make real files."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from PIL import Image

from shared.services import Services
from shared.settings import Settings
from tests.conftest import TestAccount
from tests.harness import ApiServer, InProcessWorker, free_port

MAX_BYTES = 3 * 1024 * 1024
MAX_PIXELS = 4_000_000
QUOTA_BYTES = 8 * 1024 * 1024


@pytest.fixture(scope="session")
def media_settings(env: dict[str, str]) -> Settings:
    port = free_port()
    return Settings.from_env(
        {
            **env,
            "PORT": str(port),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "URL_GUARD_ALLOW_LOOPBACK": "true",
            "UPLOAD_MAX_BYTES": str(MAX_BYTES),
            "UPLOAD_MAX_PIXELS": str(MAX_PIXELS),
            "UPLOAD_QUOTA_BYTES": str(QUOTA_BYTES),
            "INPUT_URL_TIMEOUT_S": "3",
        }
    )


@pytest.fixture(scope="session")
async def media_api(services: Services, media_settings: Settings) -> AsyncIterator[ApiServer]:
    async with ApiServer(media_settings) as server:
        yield server


@pytest.fixture
async def mclient(media_api: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=media_api.base_url, timeout=60) as http:
        yield http


@pytest.fixture
async def media_worker(media_settings: Settings) -> AsyncIterator[InProcessWorker]:
    async with InProcessWorker(media_settings) as running:
        yield running


def image_bytes(width: int, height: int, colour: tuple[int, int, int], *, fmt: str = "PNG", mode: str = "RGB") -> bytes:
    """A solid image with a white square in its top-left quarter."""
    image = Image.new(mode, (width, height), colour if mode == "RGB" else (*colour, 255))
    image.paste((255, 255, 255) if mode == "RGB" else (255, 255, 255, 255), (0, 0, width // 4, height // 4))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def data_uri(data: bytes, content_type: str = "image/png") -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


async def upload(
    client: httpx.AsyncClient, account: TestAccount, data: bytes, name: str = "photo.png"
) -> httpx.Response:
    return await client.post(
        "/v1/uploads", files={"file": (name, data, "application/octet-stream")}, headers=account.headers
    )


async def uploaded_id(client: httpx.AsyncClient, account: TestAccount, data: bytes) -> str:
    response = await upload(client, account, data)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return str(body["id"])


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image
