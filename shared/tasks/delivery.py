"""What a task delivered against what it asked for, and the usage it is charged for.

Charges follow delivery: images are charged per image stored, video per second measured from the stored
files (the provider's own figure only when a file cannot be measured), never more than was asked for (the
hold); text and flat-priced requests as the upstream reported. Where the delivery differs from the request
(fewer images, a shorter or longer video, another size), each output carries ``requested`` with the asked-for
values and the usage record both figures.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any

from shared.catalog import Model
from shared.catalog.pricing import Usage, output_megapixels


def billable_usage(model: Model, params: dict[str, Any], usage: Usage, outputs: list[dict[str, Any]]) -> Usage:
    """The upstream's usage in the catalog's unit (one request per call), with images and video seconds as
    delivered and capped at the request."""
    usage = dataclasses.replace(usage, requests=max(usage.requests, 1))
    if model.pricing.unit == "image":
        requested = int(params.get("num_images", 1))
        delivered = sum(1 for output in outputs if output["type"] == "image")
        return dataclasses.replace(usage, images=min(delivered, requested), images_requested=requested)
    if model.pricing.unit == "megapixel":
        made = sum(
            (Fraction(o["width"] * o["height"], 1_000_000) for o in outputs if o["type"] == "image" and o.get("width")),
            Fraction(0),
        )
        return dataclasses.replace(usage, megapixels=min(made, output_megapixels(params)))
    if model.pricing.unit == "video_second":
        requested_s = Fraction(params.get("duration_s", 0))
        delivered_s = delivered_seconds(outputs) or usage.video_seconds or requested_s
        return dataclasses.replace(
            usage,
            video_seconds=min(delivered_s, requested_s) if requested_s else delivered_s,
            video_seconds_requested=requested_s,
            video_seconds_delivered=delivered_s,
        )
    return usage


def delivered_seconds(outputs: list[dict[str, Any]]) -> Fraction:
    """Seconds of video in the stored outputs (each measured from its file when it could be)."""
    return sum(
        (Fraction(str(o["duration_s"])) for o in outputs if o["type"] == "video" and o.get("duration_s")),
        Fraction(0),
    )


def note_requested(model: Model, params: dict[str, Any], outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The outputs, each with ``requested`` (the asked-for values) where what came differs."""
    wanted_images = int(params.get("num_images", 1))
    images = sum(1 for output in outputs if output["type"] == "image")
    noted = []
    for output in outputs:
        requested: dict[str, Any] = {}
        if output["type"] in ("image", "video"):
            for name in ("width", "height"):
                if name in params and output.get(name) is not None and output[name] != params[name]:
                    requested[name] = params[name]
        if output["type"] == "image" and model.kind == "image" and images < wanted_images:
            requested["num_images"] = wanted_images
        delivered_s = output.get("duration_s") if output["type"] == "video" else None
        if delivered_s is not None and "duration_s" in params and Fraction(str(delivered_s)) != params["duration_s"]:
            requested["duration_s"] = params["duration_s"]
        noted.append({**output, "requested": requested} if requested else output)
    return noted
