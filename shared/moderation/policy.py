"""The operator's moderation policy: a versioned TOML file layered like the catalog (the shipped ``policy.toml``,
then each file of ``MODERATION_POLICY_PATH`` over it, replacing the fields it sets, category by category).

The file is checked when it is loaded: an unknown category or action, or a regular expression that does not
compile, stops the process at start-up instead of letting requests through unchecked.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.moderation.categories import ACTIONS, ALLOW, CATEGORIES

DEFAULT_POLICY = Path(__file__).resolve().parent / "policy.toml"
MODEL_PROTOCOLS = ("openai_moderation", "llama_guard")
ON_ERROR = ("open", "closed")
_CATEGORY_FIELDS = {"action", "on_model_error", "words", "patterns"}
_MODEL_FIELDS = {"protocol", "provider", "model", "timeout_s", "images"}


class PolicyError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class CategoryPolicy:
    action: str = ALLOW
    fail_closed: bool = False  # the moderation model failed: block (True) or let through (False)
    words: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelCheckPolicy:
    """A moderation model reached through one of the catalog's providers."""

    protocol: str
    provider: str
    model: str
    timeout_s: float = 2.0
    images: bool = False  # also judge input images and generated images (openai_moderation only)


@dataclass(frozen=True, slots=True)
class Policy:
    version: int
    categories: dict[str, CategoryPolicy]
    model: ModelCheckPolicy | None = None
    output_models: frozenset[str] = field(default_factory=frozenset)
    source: str = "<policy>"

    def action(self, category: str) -> str:
        found = self.categories.get(category)
        return found.action if found is not None else ALLOW


def load_policy(paths: tuple[Path, ...] | list[Path]) -> Policy:
    """Load and layer the policy files, in order."""
    merged: dict[str, Any] = {"version": 1, "categories": {}, "model": None, "outputs": {}}
    for path in paths:
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise PolicyError(f"cannot read moderation policy {path}: {exc}") from exc
        unknown = set(data) - {"version", "categories", "model", "outputs"}
        if unknown:
            raise PolicyError(f"{path}: unknown keys {sorted(unknown)}")
        merged["version"] = data.get("version", merged["version"])
        for name, table in (data.get("categories") or {}).items():
            if not isinstance(table, dict):
                raise PolicyError(f"{path}: categories.{name} must be a table")
            merged["categories"][name] = {**merged["categories"].get(name, {}), **table}
        if "model" in data:
            merged["model"] = data["model"] or None
        merged["outputs"].update(data.get("outputs") or {})
    return parse_policy(merged, source=", ".join(map(str, paths)))


def parse_policy(data: dict[str, Any], *, source: str = "<policy>") -> Policy:
    version = data.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise PolicyError(f"{source}: version must be a positive integer")
    categories = {name: _category(name, raw, source) for name, raw in (data.get("categories") or {}).items()}
    outputs = data.get("outputs") or {}
    models = outputs.get("models", [])
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise PolicyError(f"{source}: outputs.models must be a list of model ids")
    return Policy(
        version=version,
        categories=categories,
        model=_model(data.get("model"), source),
        output_models=frozenset(models),
        source=source,
    )


def _category(name: str, raw: dict[str, Any], source: str) -> CategoryPolicy:
    where = f"{source}: categories.{name!r}"
    if name not in CATEGORIES:
        raise PolicyError(f"{where}: unknown category (known: {', '.join(CATEGORIES)})")
    unknown = set(raw) - _CATEGORY_FIELDS
    if unknown:
        raise PolicyError(f"{where}: unknown keys {sorted(unknown)}")
    action = raw.get("action", ALLOW)
    if action not in ACTIONS:
        raise PolicyError(f"{where}: action must be one of {ACTIONS}, got {action!r}")
    on_error = raw.get("on_model_error", "open")
    if on_error not in ON_ERROR:
        raise PolicyError(f"{where}: on_model_error must be open or closed, got {on_error!r}")
    words = _strings(raw.get("words", []), f"{where}.words")
    patterns = _strings(raw.get("patterns", []), f"{where}.patterns")
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise PolicyError(f"{where}.patterns: {pattern!r} does not compile: {exc}") from exc
    return CategoryPolicy(action=action, fail_closed=on_error == "closed", words=words, patterns=patterns)


def _model(raw: Any, source: str) -> ModelCheckPolicy | None:
    if raw is None:
        return None
    where = f"{source}: model"
    if not isinstance(raw, dict):
        raise PolicyError(f"{where} must be a table")
    unknown = set(raw) - _MODEL_FIELDS
    if unknown:
        raise PolicyError(f"{where}: unknown keys {sorted(unknown)}")
    protocol = raw.get("protocol")
    if protocol not in MODEL_PROTOCOLS:
        raise PolicyError(f"{where}: protocol must be one of {MODEL_PROTOCOLS}, got {protocol!r}")
    provider, model = raw.get("provider"), raw.get("model")
    if not isinstance(provider, str) or not provider or not isinstance(model, str) or not model:
        raise PolicyError(f"{where}: provider and model are required")
    timeout_s = raw.get("timeout_s", 2.0)
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not 0 < timeout_s <= 60:
        raise PolicyError(f"{where}: timeout_s must be a number of seconds in (0, 60]")
    images = raw.get("images", False)
    if not isinstance(images, bool):
        raise PolicyError(f"{where}: images must be true or false")
    if images and protocol != "openai_moderation":
        raise PolicyError(f"{where}: images = true needs protocol openai_moderation (it judges images)")
    return ModelCheckPolicy(protocol=protocol, provider=provider, model=model, timeout_s=float(timeout_s),
                            images=images)  # fmt: skip


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise PolicyError(f"{where} must be a list of non-empty strings")
    return tuple(value)
