"""Routes and what each one honours: per route, every parameter of the model and how it reaches the upstream.

In the catalog a route's ``params`` table names each parameter the route honours and how::

    params = { prompt = "prompt",                               # sent under this upstream name
               num_images = "num_outputs",                      # renamed
               width = "image_size.width",                      # a dotted name builds a nested object
               duration_s = { to = "num_frames", frames_at = "fps", add = 1 },   # seconds -> frames
               height = { to = "size", format = "{width}x{height}" },           # built from several
               seed = { fixed = 1024 } }                        # the route cannot change it: see below

``fixed`` says what the route always does with a parameter it cannot change. The parameter's default must equal
it: a request that leaves the parameter at its default is served there, any other value is routed elsewhere.
A parameter the model offers must appear in every route's ``params``; a route may leave ``params`` out only on
protocols that take our parameters by their own names (``PASS_THROUGH``).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.catalog.params import Parameter

# Parameters a protocol takes by their own names, so a route on it may leave ``params`` out: the local provider
# implements every one of these itself; OpenAI-compatible chat upstreams read exactly these request fields.
_DRAWN = ("prompt", "negative_prompt", "width", "height", "seed", "num_inference_steps", "guidance_scale")
_CHAT = frozenset({"messages", "max_tokens", "temperature", "seed"})
PASS_THROUGH: dict[tuple[str, str], frozenset[str]] = {
    ("local", "image"): frozenset({*_DRAWN, "num_images", "image", "images", "mask", "strength", "scale"}),
    ("local", "video"): frozenset({*_DRAWN, "duration_s", "fps", "image"}),
    ("local", "text"): _CHAT,
    ("openai", "text"): _CHAT,
}
MAPPING_KEYS = {"to", "fixed", "format", "frames_at", "add"}
_UNSET = object()


@dataclass(frozen=True, slots=True)
class ParamMapping:
    """How one of our parameters reaches the upstream: under ``to`` (a dotted path), its value converted when
    ``format`` (a template over the request's parameters) or ``frames_at`` (seconds x that frame rate, plus
    ``add``) says so; or not sent at all when the route always does ``fixed``."""

    to: str | None = None
    fixed: Any = _UNSET
    format: str | None = None
    frames_at: str | int | None = None
    add: int = 0

    @property
    def is_fixed(self) -> bool:
        return self.fixed is not _UNSET

    def value(self, own: Any, params: Mapping[str, Any]) -> Any:
        """The upstream value for our value ``own`` of a request with these parameters."""
        if self.format is not None:
            return self.format.format(**params)
        if self.frames_at is not None:
            fps = params[self.frames_at] if isinstance(self.frames_at, str) else self.frames_at
            return int(own * fps) + self.add
        return own

    def public(self) -> dict[str, Any]:
        """What ``GET /v1/models/{id}`` says of it."""
        if self.is_fixed:
            return {"fixed": self.fixed}
        out: dict[str, Any] = {"as": self.to}
        if self.format is not None:
            out["format"] = self.format
        if self.frames_at is not None:
            out["converted"] = f"frames = seconds x {self.frames_at}" + (f" + {self.add}" if self.add else "")
        return out


@dataclass(frozen=True, slots=True)
class Route:
    provider: str
    upstream_model: str
    options: dict[str, Any] = field(default_factory=dict)
    params: dict[str, ParamMapping] | None = None  # None: every parameter under its own name (PASS_THROUGH)

    def mapping(self, name: str) -> ParamMapping | None:
        if self.params is None:
            return ParamMapping(to=name)
        return self.params.get(name)

    def refuses(self, params: Mapping[str, Any]) -> str | None:
        """The first parameter of this request the route cannot honour, or None when it honours them all."""
        for name, value in params.items():
            mapping = self.mapping(name)
            if mapping is None or (mapping.is_fixed and mapping.fixed != value):
                return name
        return None


def parse_mappings(raw: Any, *, where: str) -> dict[str, ParamMapping] | None:
    from shared.catalog import CatalogError

    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: params must be a table of parameter = upstream name or table")
    mappings: dict[str, ParamMapping] = {}
    for name, spec in raw.items():
        if isinstance(spec, str) and spec:
            mappings[name] = ParamMapping(to=spec)
            continue
        if not isinstance(spec, dict) or set(spec) - MAPPING_KEYS:
            raise CatalogError(f"{where}: params.{name} must be an upstream name or a table of {sorted(MAPPING_KEYS)}")
        if "fixed" in spec:
            if set(spec) != {"fixed"}:
                raise CatalogError(f"{where}: params.{name}: a fixed parameter is not sent, so it takes nothing else")
            mappings[name] = ParamMapping(fixed=spec["fixed"])
            continue
        to, template, frames_at, add = spec.get("to"), spec.get("format"), spec.get("frames_at"), spec.get("add", 0)
        if not isinstance(to, str) or not to:
            raise CatalogError(f"{where}: params.{name} needs 'to', the upstream name")
        if template is not None and (not isinstance(template, str) or frames_at is not None):
            raise CatalogError(f"{where}: params.{name}: format must be a string, and not used with frames_at")
        if frames_at is not None and not isinstance(frames_at, str | int):
            raise CatalogError(f"{where}: params.{name}: frames_at must be a parameter name or a number")
        if not isinstance(add, int) or (add and frames_at is None):
            raise CatalogError(f"{where}: params.{name}: add is a whole number of frames, with frames_at")
        mappings[name] = ParamMapping(to=to, format=template, frames_at=frames_at, add=add)
    return mappings


def route_truth_problems(
    route: Route, parameters: tuple[Parameter, ...], *, protocol: str | None, kind: str
) -> list[str]:
    """Why this route does not honour what the model offers (empty when it does). ``protocol`` is None for a
    provider the catalog does not declare (such a route is never usable)."""
    by_name = {p.name: p for p in parameters}
    if route.params is None:
        if protocol is None:
            return []
        known = PASS_THROUGH.get((protocol, kind), frozenset())
        return [
            f"takes no parameter {p.name!r} by that name: give the route a params table that maps it"
            for p in parameters
            if p.name not in known
        ]
    problems = [f"maps {name!r}, which the model does not offer" for name in route.params if name not in by_name]
    targets: dict[str, str | None] = {}
    for parameter in parameters:
        mapping = route.params.get(parameter.name)
        if mapping is None:
            problems.append(
                f"does not honour {parameter.name!r}, which the model offers: map it, give the value the route "
                "always uses as fixed (it must be the default), or stop offering it"
            )
            continue
        if mapping.is_fixed:
            if parameter.default is None or mapping.fixed != parameter.default:
                problems.append(
                    f"is fixed at {parameter.name} = {mapping.fixed!r}, but the model's default is "
                    f"{parameter.default!r}: a request left at the default must get what the route does"
                )
            continue
        if mapping.to in targets and targets[mapping.to] != mapping.format:
            problems.append(f"sends two parameters to {mapping.to!r}")
        targets[mapping.to or ""] = mapping.format
        problems.extend(_conversion_problems(parameter, mapping, by_name))
    clash = set(targets) & set(route.options.get("extra") or {})
    problems.extend(f"sets {name!r} both from a parameter and in extra" for name in sorted(clash))
    return problems


def _conversion_problems(parameter: Parameter, mapping: ParamMapping, by_name: dict[str, Parameter]) -> list[str]:
    """Conversions must only read parameters every request has (required, or with a default)."""
    always = {name for name, p in by_name.items() if p.required or p.default is not None}
    needed: set[str] = set()
    if mapping.format is not None:
        needed = {field for _, field, _, _ in string.Formatter().parse(mapping.format) if field}
    if isinstance(mapping.frames_at, str):
        needed = {mapping.frames_at}
        if parameter.type not in ("integer", "number"):
            return [f"converts {parameter.name!r} to frames, but it is not a number"]
    return [f"converts {parameter.name!r} using {name!r}, which a request may lack" for name in sorted(needed - always)]
