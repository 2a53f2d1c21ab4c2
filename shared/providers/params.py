"""Turning a task's validated input into an upstream model's input, as the route's ``params`` say.

Each parameter goes under the upstream name its mapping gives (a dotted name builds a nested object, e.g.
fal's ``image_size.width``), converted when the mapping says so (a ``format`` template such as OpenAI's
``"{width}x{height}"``, or seconds to frames at a frame rate); a parameter the route keeps ``fixed`` is not sent
(the route was only chosen because the request asked for what the route does). ``extra`` adds fixed inputs.
Input files (``InputFile``) go as the route's ``inputs`` option says: ``"url"`` (the default), a signed, expiring
Conduit URL the upstream fetches; ``"data_uri"``, the bytes inline as a ``data:`` URI.
See ``shared.catalog.routes`` for the catalog syntax.
"""

from __future__ import annotations

from typing import Any

from shared.catalog import Route
from shared.providers.base import InputFile


def upstream_input(route: Route, params: dict[str, Any]) -> dict[str, Any]:
    """The input object for the upstream model. ``params`` must be honoured by the route (``Route.refuses``)."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        mapping = route.mapping(name)
        if mapping is None or mapping.is_fixed:
            continue
        _put(out, mapping.to or name, mapping.value(_file_reference(route, value), params))
    out.update(route.options.get("extra") or {})
    return out


def _file_reference(route: Route, value: Any) -> Any:
    """An input file as the route passes it (its URL or a data: URI); any other value as it is."""
    if isinstance(value, list):
        return [_file_reference(route, item) for item in value]
    if isinstance(value, InputFile):
        return value.data_uri if route.options.get("inputs") == "data_uri" else value.url
    return value


def _put(target: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value
