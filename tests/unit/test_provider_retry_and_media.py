"""Retries inside a budget, content sniffing and measuring, bounded downloads, provider declarations."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from PIL import Image

from shared.catalog import CatalogError, parse_catalog
from shared.catalog.providers import ProviderSpec, parse_provider
from shared.infra.metrics import METRICS
from shared.providers.base import PermanentError, RetryableError, RouteError
from shared.providers.fetch import OutputFetcher
from shared.providers.media import acceptable, measure, sniff
from shared.providers.retry import RetryPolicy, with_retries
from shared.settings import Settings
from tests.simulators.media import mp4, png

FAST = RetryPolicy(max_attempts=4, budget_s=10, initial_backoff_s=0.01, max_backoff_s=0.02)


class Flaky:
    """Fails with the given errors in turn, then answers "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls: list[float] = []

    async def __call__(self) -> str:
        self.calls.append(time.monotonic())
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


async def test_transient_errors_are_retried_until_success() -> None:
    fn = Flaky(RetryableError("x", code="upstream_unavailable"), RetryableError("x", code="upstream_timeout"))
    assert await with_retries(fn, FAST) == "ok"
    assert len(fn.calls) == 3


async def test_failed_calls_and_retries_are_counted_for_the_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    counted: list[tuple[str, str]] = []
    monkeypatch.setattr(METRICS, "inc", lambda name, labels, value=1.0: counted.append((name, labels.get("code", ""))))
    fn = Flaky(RetryableError("x", code="upstream_unavailable"), RetryableError("x", code="upstream_rate_limited"))
    assert await with_retries(fn, FAST, provider="sim") == "ok"
    assert counted == [
        ("conduit_provider_errors", "upstream_unavailable"),
        ("conduit_provider_retries", ""),
        ("conduit_provider_errors", "upstream_rate_limited"),
        ("conduit_provider_retries", ""),
    ]
    counted.clear()
    assert await with_retries(Flaky(), FAST, provider="sim") == "ok"
    assert counted == []


async def test_attempts_are_limited_and_the_last_error_is_raised() -> None:
    fn = Flaky(*[RetryableError(f"try {n}", code="upstream_unavailable") for n in range(10)])
    with pytest.raises(RetryableError, match="try 3"):
        await with_retries(fn, FAST)
    assert len(fn.calls) == 4


@pytest.mark.parametrize("error", [PermanentError("no", code="upstream_invalid_request"), RouteError("no")])
async def test_permanent_and_route_errors_are_not_retried(error: Exception) -> None:
    fn = Flaky(error)
    with pytest.raises(type(error)):
        await with_retries(fn, FAST)
    assert len(fn.calls) == 1


async def test_retry_after_is_honoured_up_to_the_cap() -> None:
    fn = Flaky(RetryableError("slow down", code="upstream_rate_limited", retry_after_s=0.3))
    assert await with_retries(fn, FAST) == "ok"
    assert fn.calls[1] - fn.calls[0] >= 0.29

    capped = RetryPolicy(max_attempts=4, budget_s=10, retry_after_cap_s=1)
    fn = Flaky(RetryableError("come back later", code="upstream_rate_limited", retry_after_s=60))
    started = time.monotonic()
    with pytest.raises(RetryableError):
        await with_retries(fn, capped)
    assert len(fn.calls) == 1 and time.monotonic() - started < 1


async def test_the_budget_cuts_a_hanging_call_and_stops_further_attempts() -> None:
    async def hang() -> str:
        await __import__("asyncio").sleep(30)
        return "never"

    started = time.monotonic()
    with pytest.raises(RetryableError) as error:
        await with_retries(hang, FAST, budget_s=0.3)
    assert error.value.code == "upstream_timeout"
    assert time.monotonic() - started < 2


def test_retry_budget_stays_below_the_job_timeout() -> None:
    settings = Settings.from_env({"TASK_JOB_TIMEOUT_S": "120"})
    assert settings.retry_budget_s < 120 and settings.download_timeout_s < 120
    assert Settings.from_env({"PROVIDER_RETRY_BUDGET_S": "30"}).retry_budget_s == 30


# -- media -------------------------------------------------------------------------------------------------


def gif(frames: int, ms: int) -> bytes:
    images = [Image.new("RGB", (40, 30), color=(50 * n, 255 - 40 * n, 0)) for n in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=ms, loop=0)
    return buffer.getvalue()


def jpeg_and_webp() -> tuple[bytes, bytes]:
    image = Image.new("RGB", (33, 21), (10, 200, 30))
    jpeg, webp = io.BytesIO(), io.BytesIO()
    image.save(jpeg, format="JPEG")
    image.save(webp, format="WEBP")
    return jpeg.getvalue(), webp.getvalue()


def test_file_types_are_judged_by_their_bytes() -> None:
    jpeg, webp = jpeg_and_webp()
    assert sniff(png(10, 10)) == "image/png"
    assert sniff(jpeg) == "image/jpeg"
    assert sniff(webp) == "image/webp"
    assert sniff(gif(2, 100)) == "image/gif"
    assert sniff(mp4(64, 48, 1)) == "video/mp4"
    assert sniff(b"\x1a\x45\xdf\xa3" + bytes(40)) == "video/webm"
    assert sniff(b"<html><body>Access denied</body></html>") is None
    assert acceptable("image", "image/webp") and not acceptable("image", "video/mp4")
    assert (
        acceptable("video", "video/mp4") and acceptable("video", "image/gif") and not acceptable("video", "image/png")
    )


def test_dimensions_are_measured_from_the_files() -> None:
    jpeg, webp = jpeg_and_webp()
    assert (measure(jpeg, "image/jpeg").width, measure(webp, "image/webp").height) == (33, 21)
    animation = measure(gif(5, 200), "image/gif")
    assert (animation.width, animation.height, animation.duration_s) == (40, 30, 1.0)
    video = measure(mp4(1280, 720, 5.04), "video/mp4")
    assert (video.width, video.height, video.duration_s) == (1280, 720, 5.04)
    assert measure(b"\x89PNG\r\n\x1a\n garbage", "image/png").width is None
    assert measure(b"\x00\x00\x00\x08ftyp", "video/mp4").duration_s is None


# -- downloads ---------------------------------------------------------------------------------------------


def fetcher(handler: Callable[[httpx.Request], httpx.Response], max_bytes: int = 10_000) -> OutputFetcher:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler), max_redirects=3)
    return OutputFetcher(client, max_bytes=max_bytes, timeout_s=5)


async def test_downloads_follow_a_few_redirects_and_send_no_credentials() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        if req.url.host == "api.example":
            return httpx.Response(302, headers={"Location": "https://cdn.example/file.png"})
        return httpx.Response(200, content=b"PNGDATA")

    assert await fetcher(handler).fetch("https://api.example/out.png") == b"PNGDATA"
    assert [r.url.host for r in seen] == ["api.example", "cdn.example"]
    assert all("authorization" not in r.headers for r in seen)

    def loop(req: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": str(req.url.copy_with(path=req.url.path + "x"))})

    with pytest.raises(PermanentError, match="redirected too many times"):
        await fetcher(loop).fetch("https://cdn.example/a")


async def test_downloads_are_capped_in_size() -> None:
    def declared(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * 20_000)

    with pytest.raises(PermanentError) as declared_error:
        await fetcher(declared).fetch("https://cdn.example/big")
    assert declared_error.value.code == "output_too_large"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * 4000

    def streamed(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=chunks())  # no Content-Length

    with pytest.raises(PermanentError) as streamed_error:
        await fetcher(streamed).fetch("https://cdn.example/big")
    assert streamed_error.value.code == "output_too_large"


async def test_download_failures_and_odd_urls() -> None:
    def gone(req: httpx.Request) -> httpx.Response:
        return httpx.Response(403)

    with pytest.raises(PermanentError, match="HTTP 403"):
        await fetcher(gone).fetch("https://cdn.example/expired")

    def busy(req: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    with pytest.raises(RetryableError):
        await fetcher(busy).fetch("https://cdn.example/later")

    data = png(3, 2)
    inline = "data:image/png;base64," + base64.b64encode(data).decode()
    assert await fetcher(gone).fetch(inline) == data
    for url in ("file:///etc/passwd", "ftp://cdn.example/x", "data:image/png;base64,@@@"):
        with pytest.raises(PermanentError):
            await fetcher(gone).fetch(url)


# -- provider declarations ---------------------------------------------------------------------------------


def test_providers_are_usable_only_with_credentials() -> None:
    spec = parse_provider("together", {"protocol": "openai", "base_url": "https://api.together.xyz/v1",
                                       "api_key_env": "TOGETHER_API_KEY"}, where="t")  # fmt: skip
    assert spec.base_url_env == "TOGETHER_BASE_URL"
    assert not spec.resolve({}).configured
    resolved = spec.resolve({"TOGETHER_API_KEY": "k", "TOGETHER_BASE_URL": "http://127.0.0.1:9999/v1/"})
    assert resolved.configured and resolved.base_url == "http://127.0.0.1:9999/v1" and resolved.api_key == "k"

    vllm = ProviderSpec(name="vllm", protocol="openai", api_key_env="VLLM_API_KEY", base_url_env="VLLM_BASE_URL",
                        key_optional=True)  # fmt: skip
    assert not vllm.resolve({}).configured
    assert vllm.resolve({"VLLM_BASE_URL": "http://gpu:8000/v1"}).configured


def test_settings_capture_only_credential_and_base_url_variables() -> None:
    env = {"FAL_KEY": "f", "REPLICATE_API_TOKEN": "r", "X_BASE_URL": "http://x", "HOME": "/r", "SECRET_KEY": "s",
           "STRIPE_API_KEY": "sk"}  # fmt: skip
    settings = Settings.from_env(env)
    assert dict(settings.provider_env) == {"FAL_KEY": "f", "REPLICATE_API_TOKEN": "r", "X_BASE_URL": "http://x"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"protocol": "grpc", "api_key_env": "X_API_KEY"}, "protocol"),
        ({"protocol": "openai"}, "api_key_env"),
        ({"protocol": "openai", "api_key_env": "lower_key"}, "api_key_env"),
        ({"protocol": "openai", "api_key_env": "X_API_KEY", "base_url": "ftp://x"}, "base_url"),
        ({"protocol": "openai", "api_key_env": "X_API_KEY", "colour": "red"}, "unknown keys"),
    ],
)
def test_bad_provider_declarations_stop_the_catalog_loading(raw: dict[str, object], message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        parse_catalog({"providers": {"x": raw}})


def test_bad_route_options_stop_the_catalog_loading() -> None:
    model = {"id": "m", "kind": "image", "parameters": [{"name": "prompt", "type": "string"}],
             "pricing": {"unit": "image", "credits": "1"},
             "routes": [{"provider": "local", "model": "image", "size": "huge"}]}  # fmt: skip
    with pytest.raises(CatalogError, match="size"):
        parse_catalog({"models": [model]})
