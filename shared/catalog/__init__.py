"""The model catalog: ids, kinds, prices, parameter schemas and provider routes, loaded from a TOML file.

The file is checked thoroughly when it is loaded, so a typo in a price or a schema, or a route that would not
honour a parameter its model offers, stops the process at start-up instead of surfacing as a wrong charge or
an ignored request later.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.catalog.capabilities import ModelCapabilities, parse_capabilities
from shared.catalog.params import Parameter, default_problem, parse_parameter
from shared.catalog.pricing import Pricing, parse_pricing
from shared.catalog.providers import ProviderSpec, check_route_options, parse_provider
from shared.catalog.routes import Route, parse_mappings, route_truth_problems

KINDS = ("image", "video", "text", "embedding", "moderation")


class CatalogError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Model:
    id: str
    kind: str
    name: str
    owned_by: str
    created: int
    description: str
    pricing: Pricing
    parameters: tuple[Parameter, ...]
    routes: tuple[Route, ...]
    max_runtime_s: int
    capabilities: ModelCapabilities = field(default_factory=ModelCapabilities)

    def parameter(self, name: str) -> Parameter | None:
        for parameter in self.parameters:
            if parameter.name == name:
                return parameter
        return None


class Catalog:
    def __init__(self, models: list[Model], version: int, providers: dict[str, ProviderSpec] | None = None) -> None:
        self.version = version
        self._models = {model.id: model for model in models}
        self.providers: dict[str, ProviderSpec] = providers or {}

    def __iter__(self):
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def get(self, model_id: str) -> Model | None:
        return self._models.get(model_id)


def load_catalog(path: Path) -> Catalog:
    return load_catalog_paths((path,))


def load_catalog_paths(paths: tuple[Path, ...] | list[Path]) -> Catalog:
    """Load one or more catalog files; a later file adds models and parameter sets, or replaces them by id."""
    merged: dict[str, Any] = {"parameter_sets": {}, "models": [], "providers": {}}
    for path in paths:
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CatalogError(f"cannot read catalog {path}: {exc}") from exc
        merged["version"] = data.get("version", merged.get("version", 1))
        merged["parameter_sets"].update(data.get("parameter_sets") or {})
        merged["providers"].update(data.get("providers") or {})
        ids = {model.get("id") for model in data.get("models") or []}
        merged["models"] = [m for m in merged["models"] if m.get("id") not in ids] + list(data.get("models") or [])
    return parse_catalog(merged, source=", ".join(map(str, paths)))


def parse_catalog(data: dict[str, Any], *, source: str = "<catalog>") -> Catalog:
    sets: dict[str, tuple[Parameter, ...]] = {}
    for set_name, entries in (data.get("parameter_sets") or {}).items():
        sets[set_name] = tuple(parse_parameter(entry, where=f"{source}: parameter set {set_name}") for entry in entries)
    models: list[Model] = []
    seen: set[str] = set()
    for index, raw in enumerate(data.get("models") or []):
        where = f"{source}: models[{index}]"
        model = _parse_model(raw, sets, where)
        if model.id in seen:
            raise CatalogError(f"{where}: duplicate model id {model.id!r}")
        seen.add(model.id)
        models.append(model)
    providers = {
        name: parse_provider(name, raw, where=f"{source}: providers.{name}")
        for name, raw in (data.get("providers") or {}).items()
    }
    catalog = Catalog(models, version=int(data.get("version", 1)), providers=providers)
    problems = parameter_truth_problems(catalog)
    if problems:
        raise CatalogError(f"{source}: routes that do not honour what their model offers:\n  " + "\n  ".join(problems))
    return catalog


def parameter_truth_problems(catalog: Catalog) -> list[str]:
    """Every route of every model must honour every parameter the model offers (``shared.catalog.routes``)."""
    problems = []
    for model in catalog:
        for route in model.routes:
            spec = catalog.providers.get(route.provider)
            protocol = spec.protocol if spec is not None else None
            for problem in route_truth_problems(route, model.parameters, protocol=protocol, kind=model.kind):
                problems.append(f"{model.id}, route {route.provider}: {problem}")
    return problems


def catalog_problems(catalog: Catalog) -> list[str]:
    """The catalog's self-check: parameter truth, defaults within their ranges, an offline ``local`` route per
    model (so every model works with no credentials). Loading already refuses the first two."""
    problems = parameter_truth_problems(catalog)
    for model in catalog:
        for parameter in model.parameters:
            problem = default_problem(parameter)
            if problem:
                problems.append(f"{model.id}: {problem}")
        if not any(route.provider == "local" for route in model.routes):
            problems.append(f"{model.id}: has no local route")
    return problems


def _parse_model(raw: dict[str, Any], sets: dict[str, tuple[Parameter, ...]], where: str) -> Model:
    try:
        model_id = str(raw["id"])
        kind = str(raw["kind"])
        routes_raw = raw["routes"]
    except KeyError as exc:
        raise CatalogError(f"{where}: missing {exc.args[0]!r}") from exc
    if kind not in KINDS:
        raise CatalogError(f"{where}: kind must be one of {KINDS}, got {kind!r}")
    parameters: list[Parameter] = []
    set_name = raw.get("parameter_set")
    if set_name is not None:
        if set_name not in sets:
            known = ", ".join(sorted(sets)) or "none"
            raise CatalogError(f"{where} ({model_id}): unknown parameter_set {set_name!r} (defined: {known})")
        parameters.extend(sets[set_name])
    for entry in raw.get("parameters") or []:
        parameter = parse_parameter(entry, where=f"{where} ({model_id})")
        parameters = [p for p in parameters if p.name != parameter.name] + [parameter]
    if not parameters and kind not in ("embedding", "moderation"):  # their request fields are not parameters
        raise CatalogError(f"{where}: model {model_id!r} has no parameters")
    pricing = parse_pricing(raw.get("pricing") or {}, kind=kind, where=f"{where} ({model_id})")
    routes = []
    for route in routes_raw:
        route_where = f"{where} ({model_id}, route {route.get('provider')})"
        options = {k: v for k, v in route.items() if k not in ("provider", "model", "params")}
        check_route_options(options, where=route_where)
        routes.append(
            Route(
                provider=str(route["provider"]),
                upstream_model=str(route.get("model", "")),
                options=options,
                params=parse_mappings(route.get("params"), where=route_where),
            )
        )
    if not routes:
        raise CatalogError(f"{where}: model {model_id!r} has no routes")
    created = raw.get("created", dt.date(2024, 1, 1))
    if isinstance(created, dt.date):
        created = int(dt.datetime(created.year, created.month, created.day, tzinfo=dt.UTC).timestamp())
    return Model(
        id=model_id,
        kind=kind,
        name=str(raw.get("name", model_id)),
        owned_by=str(raw.get("owned_by", "conduit")),
        created=int(created),
        description=str(raw.get("description", "")),
        pricing=pricing,
        parameters=tuple(parameters),
        routes=tuple(routes),
        max_runtime_s=int(raw.get("max_runtime_s", 600)),
        capabilities=_capabilities(raw, kind, tuple(routes), parameters, where=f"{where} ({model_id})"),
    )


def _capabilities(
    raw: dict[str, Any], kind: str, routes: tuple[Route, ...], parameters: list[Parameter], *, where: str
) -> ModelCapabilities:
    max_tokens = next((p.maximum for p in parameters if p.name == "max_tokens"), None)
    tables = [(route.provider, route.upstream_model, route.options.get("capabilities")) for route in routes]
    return parse_capabilities(raw.get("capabilities"), tables, kind=kind, max_tokens=max_tokens, where=where)
