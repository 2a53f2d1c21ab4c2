"""Server-side pricing: the worst case a hold must cover, and the actual cost of what was produced.

All amounts are integer micro-credits; fractional results are rounded up to the next micro-credit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction
from typing import Any

import msgspec

from shared.ledger.money import Credits, CreditsFormatError, parse_credits

UNITS = ("image", "video_second", "token", "request", "megapixel")
MESSAGE_OVERHEAD_TOKENS = 8  # chat template tokens around each message, generously
PROMPT_OVERHEAD_TOKENS = 16
DEFAULT_BATCH_DISCOUNT = Fraction(1, 2)  # batch work costs half, unless a model's pricing says otherwise


class ModelPricing(msgspec.Struct):
    """A model's price: per million tokens (``unit`` ``token``), or ``credits`` per image, video second or
    request."""

    unit: str
    input_per_million: Credits | msgspec.UnsetType = msgspec.UNSET
    output_per_million: Credits | msgspec.UnsetType = msgspec.UNSET
    cached_input_per_million: Credits | msgspec.UnsetType = msgspec.UNSET
    credits: Credits | msgspec.UnsetType = msgspec.UNSET
    batch_discount: float = 0.0  # the share of the price taken off lines of the OpenAI Batch API


@dataclass(frozen=True, slots=True)
class Pricing:
    unit: str
    per_unit: int = 0  # micro-credits per image / video second / request / output megapixel
    input_per_million: int = 0  # micro-credits per 1M input tokens
    output_per_million: int = 0  # micro-credits per 1M output tokens
    cached_input_per_million: int | None = None  # per 1M input tokens the upstream served from its cache
    batch_discount: Fraction = DEFAULT_BATCH_DISCOUNT  # taken off every price for batch work (OpenAI Batch API)
    discount: Fraction = Fraction(0)  # taken off every price by ``cost`` (``for_batch`` sets it)

    def for_batch(self) -> Pricing:
        """These prices with the batch discount taken off."""
        return replace(self, discount=self.batch_discount)

    def public(self) -> ModelPricing:
        discount = float(self.batch_discount)
        if self.unit == "token":
            cached = self.cached_input_per_million
            return ModelPricing(
                unit="token",
                input_per_million=Credits(self.input_per_million),
                output_per_million=Credits(self.output_per_million),
                cached_input_per_million=Credits(cached) if cached is not None else msgspec.UNSET,
                batch_discount=discount,
            )
        return ModelPricing(unit=self.unit, credits=Credits(self.per_unit), batch_discount=discount)


@dataclass(frozen=True, slots=True)
class Usage:
    """What a call produced, in the units prices are expressed in."""

    images: int = 0
    video_seconds: Fraction = Fraction(0)
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0  # of input_tokens, those the upstream served from its prompt cache
    reasoning_tokens: int = 0  # of output_tokens, those spent reasoning (not priced apart)
    requests: int = 0
    megapixels: Fraction = Fraction(0)  # of the output images (upscalers: the input's, times the scale squared)
    upstream_seconds: float = 0.0  # compute time the upstream reported (Replicate's predict_time); not priced
    # What was asked for and what came, when charges follow delivery (shared.tasks.delivery); not priced.
    images_requested: int = 0
    video_seconds_requested: Fraction = Fraction(0)
    video_seconds_delivered: Fraction = Fraction(0)

    def public(self) -> dict[str, Any]:
        """The usage record's units: the priced ones, and the requested and delivered figures where they differ
        from what was charged."""
        out: dict[str, Any] = {}
        if self.images:
            out["images"] = self.images
        if self.images_requested and self.images_requested != self.images:
            out["images_requested"] = self.images_requested
        if self.video_seconds:
            out["video_seconds"] = float(self.video_seconds)
        for name in ("video_seconds_requested", "video_seconds_delivered"):
            value = getattr(self, name)
            if value and value != self.video_seconds:
                out[name] = float(value)
        if self.input_tokens or self.output_tokens:
            out["input_tokens"] = self.input_tokens
            out["output_tokens"] = self.output_tokens
        for name in ("cached_input_tokens", "reasoning_tokens"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        if self.requests:
            out["requests"] = self.requests
        if self.megapixels:
            out["megapixels"] = round(float(self.megapixels), 6)
        if self.upstream_seconds:
            out["upstream_seconds"] = round(self.upstream_seconds, 3)
        return out


def parse_pricing(raw: dict[str, Any], *, kind: str, where: str) -> Pricing:
    from shared.catalog import CatalogError

    unit = raw.get("unit")
    if unit not in UNITS:
        raise CatalogError(f"{where}: pricing.unit must be one of {UNITS}, got {unit!r}")
    try:
        if unit == "token":
            cached = raw.get("cached_input")
            pricing = Pricing(
                unit=unit,
                input_per_million=parse_credits(raw["input"]),
                # embeddings produce no tokens: their output price is 0 unless stated
                output_per_million=parse_credits(raw["output"] if kind != "embedding" else raw.get("output", "0")),
                cached_input_per_million=parse_credits(cached) if cached is not None else None,
            )
        else:
            pricing = Pricing(unit=unit, per_unit=parse_credits(raw["credits"]))
        pricing = replace(pricing, batch_discount=_batch_discount(raw.get("batch_discount"), where))
    except KeyError as exc:
        raise CatalogError(f"{where}: pricing is missing {exc.args[0]!r}") from exc
    except CreditsFormatError as exc:
        raise CatalogError(f"{where}: bad price: {exc}") from exc
    if min(pricing.per_unit, pricing.input_per_million, pricing.output_per_million) < 0:
        raise CatalogError(f"{where}: prices cannot be negative")
    cached = pricing.cached_input_per_million
    if cached is not None and not 0 <= cached <= pricing.input_per_million:
        raise CatalogError(f"{where}: the cached input price must be between 0 and the input price")
    if unit == "token" and kind not in ("text", "embedding"):
        raise CatalogError(f"{where}: token pricing only applies to text and embedding models")
    if kind == "embedding" and unit != "token":
        raise CatalogError(f"{where}: embedding models are priced per token")
    if unit == "video_second" and kind != "video":
        raise CatalogError(f"{where}: video_second pricing only applies to video models")
    if unit == "megapixel" and kind != "image":
        raise CatalogError(f"{where}: megapixel pricing only applies to image models")
    return pricing


def max_input_tokens(messages: list[dict[str, str]]) -> int:
    """An upper bound on the prompt's token count: no tokenizer emits more tokens than UTF-8 bytes."""
    total = PROMPT_OVERHEAD_TOKENS
    for message in messages:
        total += len(message.get("content", "").encode()) + MESSAGE_OVERHEAD_TOKENS
    return total


def worst_case_usage(unit: str, params: dict[str, Any]) -> Usage:
    """The most a call with these (validated) parameters can produce, in priced units."""
    if unit == "image":
        return Usage(images=int(params.get("num_images", 1)))
    if unit == "video_second":
        return Usage(video_seconds=Fraction(params.get("duration_s", 1)))
    if unit == "megapixel":
        return Usage(megapixels=output_megapixels(params))
    if unit == "token":
        return Usage(
            input_tokens=max_input_tokens(params.get("messages", [])),
            output_tokens=int(params.get("max_tokens", 0)),
        )
    return Usage(requests=1)


def output_megapixels(params: dict[str, Any]) -> Fraction:
    """The megapixels a request priced per megapixel makes: its input ``image`` (once stored, with its size)
    times ``scale`` squared (1 without a scale), or ``width`` x ``height``, per image."""
    image = params.get("image")
    if isinstance(image, dict) and image.get("width") and image.get("height"):
        scale = int(params.get("scale", 1))
        pixels = int(image["width"]) * int(image["height"]) * scale * scale
    else:
        pixels = int(params.get("width", 0)) * int(params.get("height", 0))
    return Fraction(pixels * int(params.get("num_images", 1)), 1_000_000)


def cost(pricing: Pricing, usage: Usage) -> int:
    """Micro-credits for ``usage`` under ``pricing``, rounded up."""
    if pricing.unit == "token":
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        cached_price = (
            pricing.input_per_million
            if pricing.cached_input_per_million is None
            else (pricing.cached_input_per_million)
        )
        exact = Fraction(
            (usage.input_tokens - cached) * pricing.input_per_million
            + cached * cached_price
            + usage.output_tokens * pricing.output_per_million,
            1_000_000,
        )
    elif pricing.unit == "image":
        exact = Fraction(usage.images * pricing.per_unit)
    elif pricing.unit == "video_second":
        exact = usage.video_seconds * pricing.per_unit
    elif pricing.unit == "megapixel":
        exact = usage.megapixels * pricing.per_unit
    else:
        exact = Fraction(usage.requests * pricing.per_unit)
    exact *= 1 - pricing.discount
    return -((-exact.numerator) // exact.denominator)  # ceiling division


def to_decimal_seconds(seconds: Fraction) -> Decimal:
    return Decimal(seconds.numerator) / Decimal(seconds.denominator)


def _batch_discount(raw: Any, where: str) -> Fraction:
    """``pricing.batch_discount``: the share of the price batch work does not pay, from 0 up to (not) 1."""
    from shared.catalog import CatalogError

    if raw is None:
        return DEFAULT_BATCH_DISCOUNT
    try:
        discount = Fraction(Decimal(str(raw)))
    except ArithmeticError as exc:
        raise CatalogError(f"{where}: pricing.batch_discount must be a decimal number, got {raw!r}") from exc
    if isinstance(raw, bool) or not 0 <= discount < 1:
        raise CatalogError(f"{where}: pricing.batch_discount must be at least 0 and below 1, got {raw!r}")
    return discount
