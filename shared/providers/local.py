"""The offline ``local`` provider: real outputs with no upstream and no credentials.

* image: a PNG drawn with Pillow from the prompt and seed, at the requested size;
* video: an animated GIF of ``duration_s`` x ``fps`` frames, whose frame delays add up to exactly ``duration_s``;
* text: a deterministic reply, with token usage counted like an upstream would report it;
* with an input ``image``: image-to-image, edits (with a ``mask``), upscales (with a ``scale``) and image-to-video
  made from the input's pixels (``shared.providers.local_media``).

While it draws, it reports its progress (``shared.providers.progress``): each drawing step of an image when
``num_inference_steps`` sets how many there are (else each image), each frame of a video.

Every parameter the catalog lets a local route take (``shared.catalog.routes.PASS_THROUGH``) changes what is
made: the negative prompt, steps and guidance scale of images and videos pick the drawing (steps also set how
many shapes it has), the temperature of a reply its words.

Route options (catalog): ``latency_ms`` waits that long (asynchronously) before answering, to stand in
for a slow upstream; ``error = "<code>"`` fails every request permanently with that code, so client
error handling can be exercised offline.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import random
import re
import textwrap
from fractions import Fraction
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps

from shared.catalog.pricing import Usage
from shared.providers.base import Completed, GenerationRequest, InputFile, Output, PermanentError, Running
from shared.providers.progress import StepCallback, report_progress, step_reporter

_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORDS = [
    "conduit",
    "routes",
    "every",
    "request",
    "through",
    "one",
    "key",
    "and",
    "one",
    "balance",
    "while",
    "the",
    "models",
    "do",
    "the",
    "creative",
    "work",
    "light",
    "colour",
    "shape",
    "motion",
    "story",
    "detail",
    "texture",
    "signal",
    "pattern",
    "river",
    "mountain",
    "city",
    "ocean",
    "forest",
    "engine",
]


def count_tokens(text: str) -> int:
    """A simple word-and-punctuation tokenizer; never more tokens than UTF-8 bytes."""
    return len(_TOKEN.findall(text))


def _rng(*parts: Any) -> random.Random:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # pragma: no cover - Pillow without FreeType
        return ImageFont.load_default()


def _style(params: dict[str, Any]) -> tuple[Any, ...]:
    """The parameters that pick a drawing besides prompt, seed and size."""
    return tuple(params.get(name) for name in ("negative_prompt", "num_inference_steps", "guidance_scale"))


def draw_image(
    prompt: str,
    seed: int,
    width: int,
    height: int,
    index: int = 0,
    style: tuple[Any, ...] = (),
    shapes: int = 0,
    on_step: StepCallback | None = None,
) -> bytes:
    """``style`` values pick the colours and layout; ``shapes`` ellipses are drawn (0: four to nine), one per
    step (``on_step(done, of)`` after each)."""
    rng = _rng(prompt, seed, index, *style)
    start = tuple(rng.randrange(256) for _ in range(3))
    end = tuple(rng.randrange(256) for _ in range(3))
    gradient = Image.linear_gradient("L").rotate(rng.choice((0, 45, 90, 135))).resize((width, height))
    image = ImageOps.colorize(gradient, start, end).convert("RGB")
    draw = ImageDraw.Draw(image, "RGBA")
    steps = shapes or rng.randint(4, 9)
    for step in range(steps):
        radius = rng.randint(min(width, height) // 12, min(width, height) // 3)
        x, y = rng.randrange(width), rng.randrange(height)
        colour = (*(rng.randrange(256) for _ in range(3)), rng.randint(60, 160))
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
        if on_step is not None:
            on_step(step + 1, steps)
    font_size = max(12, min(width, height) // 18)
    lines = textwrap.wrap(prompt, width=max(10, width // (font_size // 2 + 1)))[:6]
    font = _font(font_size)
    y = height - (len(lines) + 1) * (font_size + 6)
    for line in lines:
        draw.text(
            (font_size, y),
            line,
            fill=(255, 255, 255, 230),
            font=font,
            stroke_width=2,
            stroke_fill=(0, 0, 0, 200),
        )
        y += font_size + 6
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def frame_delays_ms(seconds: int, fps: int) -> list[int]:
    """Per-frame delays in GIF's 10 ms steps whose sum is exactly ``seconds`` (1000/fps is rarely a multiple of
    10 ms: 24 fps alternates 40 and 50 ms)."""
    count = max(1, seconds * fps)
    ticks = [round(n * seconds * 100 / count) for n in range(count + 1)]
    return [10 * (ticks[n + 1] - ticks[n]) for n in range(count)]


def draw_animation(
    prompt: str,
    seed: int,
    width: int,
    height: int,
    seconds: int,
    fps: int,
    style: tuple[Any, ...] = (),
    on_frame: StepCallback | None = None,
) -> bytes:
    """An animated GIF of ``seconds`` x ``fps`` frames (``on_frame(done, of)`` after each)."""
    rng = _rng(prompt, seed, "video", *style)
    background = tuple(rng.randrange(256) for _ in range(3))
    colour = tuple(rng.randrange(256) for _ in range(3))
    radius = max(6, min(width, height) // 8)
    frames = []
    count = max(1, seconds * fps)
    for n in range(count):
        frame = Image.new("RGB", (width, height), background)
        draw = ImageDraw.Draw(frame)
        x = radius + (width - 2 * radius) * n // max(1, count - 1)
        y = height // 2 + int((height // 4) * ((n % fps) / fps - 0.5))
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
        draw.text((8, 8), prompt[:60], fill=(255, 255, 255))
        frames.append(frame.convert("P", palette=Image.Palette.ADAPTIVE, colors=32))
        if on_frame is not None:
            on_frame(n + 1, count)
    buffer = io.BytesIO()
    delays = frame_delays_ms(seconds, fps)
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=delays, loop=0)
    return buffer.getvalue()


def reply_text(
    messages: list[dict[str, str]], max_tokens: int, seed: int, temperature: float | None = None
) -> tuple[str, int, int]:
    """Return (text, input_tokens, output_tokens) for a chat request; the temperature picks the closing words."""
    prompt_tokens = sum(count_tokens(m["content"]) + 4 for m in messages) + 2
    last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    rng = _rng(last_user, seed) if temperature is None else _rng(last_user, seed, temperature)
    words = ["Local", "model", "reply", "to:", *last_user.split()[:24], "—"]
    words += [rng.choice(_WORDS) for _ in range(8 + len(last_user) % 24)]
    out: list[str] = []
    used = 0
    for word in words:
        cost = count_tokens(word)
        if used + cost > max_tokens:
            break
        out.append(word)
        used += cost
    return " ".join(out), prompt_tokens, used


def _image_done(done: int, count: int) -> dict[str, Any]:
    return {"step": done, "total_steps": count, "unit": "image", "percent": round(100 * done / count, 1)}


class LocalProvider:
    name = "local"

    def configured(self) -> bool:
        return True

    async def start(self, request: GenerationRequest) -> Completed:
        latency_ms = float(request.route.options.get("latency_ms", 0))
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)
        if request.route.options.get("error"):
            code = str(request.route.options["error"])
            raise PermanentError(f"the local provider was configured to fail with {code!r}", code=code)
        kind = request.route.upstream_model or request.model.kind
        params = request.params
        # Like an upstream, no seed means a random one (here: derived from the task id, so reruns agree).
        seed = int(params["seed"]) if "seed" in params else request.task_id.int % 2**32
        if kind == "image" and isinstance(params.get("images"), list):  # several references: their blend
            from shared.providers import local_media

            blended = await asyncio.to_thread(local_media.blend, [file.data for file in params["images"]])
            first = params["images"][0]
            params = {**params, "image": InputFile(first.key, "image/png", first.url, blended)}
        if kind == "image" and isinstance(params.get("image"), InputFile):
            return await self._image_from_input(params, seed)
        if kind == "image":
            return await self._image(params, seed)
        if kind == "video" and isinstance(params.get("image"), InputFile):
            return await self._animation_of_input(params)
        if kind == "video":
            return await self._video(params, seed)
        if kind == "text":
            from shared.providers import local_chat  # it builds on this module's reply_text

            return local_chat.complete(params, seed)
        raise PermanentError(f"the local provider cannot generate {kind!r}", code="unsupported_model")

    async def _image(self, params: dict[str, Any], seed: int) -> Completed:
        width, height, count = int(params["width"]), int(params["height"]), int(params.get("num_images", 1))
        shapes = min(16, 3 + int(params["num_inference_steps"]) // 4) if "num_inference_steps" in params else 0
        outputs = []
        for index in range(count):
            # progress: each image's drawing steps, counted across the images (the shapes need a fixed count)
            per_image = shapes or 1
            on_step = step_reporter("step", offset=index * per_image, total=per_image * count) if shapes else None
            png = await asyncio.to_thread(
                draw_image, params["prompt"], seed, width, height, index, _style(params), shapes, on_step
            )
            if not shapes:
                await report_progress(_image_done(index + 1, count))
            outputs.append(Output(type="image", content_type="image/png", data=png, width=width, height=height))
        return Completed(outputs=outputs, usage=Usage(images=count))

    async def _video(self, params: dict[str, Any], seed: int) -> Completed:
        width, height = int(params["width"]), int(params["height"])
        seconds, fps = int(params["duration_s"]), int(params["fps"])
        gif = await asyncio.to_thread(
            draw_animation, params["prompt"], seed, width, height, seconds, fps, _style(params), step_reporter("frame")
        )
        output = Output(type="video", content_type="image/gif", data=gif, width=width, height=height)
        return Completed(outputs=[output], usage=Usage(video_seconds=Fraction(seconds)))

    async def _image_from_input(self, params: dict[str, Any], seed: int) -> Completed:
        """Image-to-image, edits and upscales (``shared.providers.local_media``): each output uses the input."""
        from shared.providers import local_media

        image: InputFile = params["image"]
        mask = params.get("mask")
        size = (int(params["width"]), int(params["height"])) if "width" in params and "height" in params else None
        prompt, count = str(params.get("prompt", "")), int(params.get("num_images", 1))
        outputs = []
        for index in range(count):
            if "scale" in params:
                try:
                    png = await asyncio.to_thread(local_media.upscale, image.data, int(params["scale"]))
                except ValueError as exc:
                    raise PermanentError(str(exc), code="output_too_large") from None
            elif isinstance(mask, InputFile):
                png = await asyncio.to_thread(local_media.edit, image.data, mask.data, prompt, seed + index,
                                              _style(params))  # fmt: skip
            else:
                strength = float(params.get("strength", 0.35))
                png = await asyncio.to_thread(local_media.restyle, image.data, prompt, seed + index, size, strength,
                                              _style(params))  # fmt: skip
            outputs.append(Output(type="image", content_type="image/png", data=png))
        return Completed(outputs=outputs, usage=Usage(images=count))

    async def _animation_of_input(self, params: dict[str, Any]) -> Completed:
        from shared.providers import local_media

        size = (int(params["width"]), int(params["height"])) if "width" in params and "height" in params else None
        seconds, fps = int(params["duration_s"]), int(params.get("fps", 8))
        gif = await asyncio.to_thread(local_media.animate, params["image"].data, size, seconds, fps)
        output = Output(type="video", content_type="image/gif", data=gif)
        return Completed(outputs=[output], usage=Usage(video_seconds=Fraction(seconds)))

    async def poll(self, request: GenerationRequest, upstream_id: str) -> Completed | Running:
        raise PermanentError("the local provider has no upstream jobs to poll", code="unsupported_operation")

    async def cancel(self, request: GenerationRequest, upstream_id: str) -> None:
        return None
