"""Turning a task's validated input into an upstream model's input, driven by route options in the catalog.

Route options understood by every upstream adapter (all optional)::

    { provider = "replicate", model = "black-forest-labs/flux-schnell",
      size = "aspect_ratio",                      # how width/height are sent (see SIZE_STYLES)
      rename = { num_images = "num_outputs" },    # our parameter name -> the upstream's
      drop = ["num_inference_steps"],             # parameters this upstream model does not take
      extra = { output_format = "png" } }         # fixed inputs added to every request

Size styles: ``width_height`` (``width`` and ``height`` fields, the default), ``size`` (OpenAI's
``"1024x768"``), ``image_size`` (fal's ``{"width": .., "height": ..}``), ``aspect_ratio`` (the nearest of
the usual ratios, e.g. ``"16:9"``, for models that take no pixel size).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from shared.catalog import Route
from shared.catalog.providers import SIZE_STYLES

ASPECT_RATIOS = ("1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21")


def nearest_aspect_ratio(width: int, height: int) -> str:
    target = Fraction(width, height)

    def distance(ratio: str) -> float:
        w, h = (int(part) for part in ratio.split(":"))
        return abs(float(Fraction(w, h) - target))

    return min(ASPECT_RATIOS, key=distance)


def upstream_input(
    route: Route,
    params: dict[str, Any],
    *,
    default_size: str = "width_height",
    default_rename: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The input object for the upstream model: sizes converted, names mapped, extras added."""
    options = route.options
    size_style = str(options.get("size", default_size))
    if size_style not in SIZE_STYLES:
        raise ValueError(f"route option size must be one of {SIZE_STYLES}, got {size_style!r}")
    rename: dict[str, str] = {**(default_rename or {}), **(options.get("rename") or {})}
    drop = set(options.get("drop") or ())
    out: dict[str, Any] = {}
    width, height = params.get("width"), params.get("height")
    for name, value in params.items():
        if name in drop or name in ("width", "height"):
            continue
        out[rename.get(name, name)] = value
    if width is not None and height is not None and "width" not in drop:
        if size_style == "width_height":
            out[rename.get("width", "width")] = width
            out[rename.get("height", "height")] = height
        elif size_style == "size":
            out["size"] = f"{width}x{height}"
        elif size_style == "image_size":
            out["image_size"] = {"width": width, "height": height}
        else:
            out["aspect_ratio"] = nearest_aspect_ratio(int(width), int(height))
    out.update(options.get("extra") or {})
    return out
