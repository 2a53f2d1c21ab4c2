"""A deterministic JSON value that matches a JSON schema: what the ``local`` provider answers for a tool call's
arguments and for ``response_format`` ``json_schema``.

Covered: ``type`` (object, array, string, integer, number, boolean, null, or a list of them), ``properties`` (every
property is given, so every ``required`` one is), ``items`` / ``minItems``, ``enum`` / ``const``, ``anyOf`` /
``oneOf`` / ``allOf`` (the first option), ``minimum`` / ``maximum`` (and the exclusive forms), ``minLength``, and
``$ref`` to ``#/$defs/…`` or ``#/definitions/…`` (what Pydantic and LangChain generate). Strings are taken from
``words`` in turn (the words of the user's message), so an argument such as a city name comes from the prompt.
"""

from __future__ import annotations

import random
from typing import Any

MAX_DEPTH = 8


class _Builder:
    def __init__(self, root: dict[str, Any], words: list[str], rng: random.Random) -> None:
        self.root = root
        self.words = words or ["local"]
        self.used = 0
        self.rng = rng

    def value(self, schema: Any, depth: int = 0) -> Any:
        if not isinstance(schema, dict) or depth > MAX_DEPTH:
            return None if depth > MAX_DEPTH else self.text(schema)
        if "$ref" in schema:
            return self.value(self.resolve(str(schema["$ref"])), depth + 1)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][0]
        for combinator in ("anyOf", "oneOf", "allOf"):
            options = schema.get(combinator)
            if isinstance(options, list) and options:
                usable = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")] or options
                return self.value(usable[0], depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
        if kind == "object":
            properties: dict[str, Any] = schema["properties"] if isinstance(schema.get("properties"), dict) else {}
            return {name: self.value(sub, depth + 1) for name, sub in properties.items()}
        if kind == "array":
            count = max(1, int(schema.get("minItems", 1) or 1))
            return [self.value(schema.get("items", {}), depth + 1) for _ in range(count)]
        if kind == "integer":
            low, high = self.bounds(schema, 0, 100)
            return self.rng.randint(int(low), int(max(low, high)))
        if kind == "number":
            low, high = self.bounds(schema, 0, 100)
            return round(self.rng.uniform(low, max(low, high)), 2)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self.text(schema)

    def text(self, schema: Any) -> str:
        word = self.words[self.used % len(self.words)]
        self.used += 1
        minimum = int(schema.get("minLength", 0) or 0) if isinstance(schema, dict) else 0
        return word if len(word) >= minimum else word + "x" * (minimum - len(word))

    @staticmethod
    def bounds(schema: dict[str, Any], low: float, high: float) -> tuple[float, float]:
        if isinstance(schema.get("minimum"), int | float):
            low = schema["minimum"]
        if isinstance(schema.get("exclusiveMinimum"), int | float):
            low = schema["exclusiveMinimum"] + 1
        if isinstance(schema.get("maximum"), int | float):
            high = schema["maximum"]
        if isinstance(schema.get("exclusiveMaximum"), int | float):
            high = schema["exclusiveMaximum"] - 1
        return low, high

    def resolve(self, ref: str) -> Any:
        node: Any = self.root
        if not ref.startswith("#/"):
            return {}
        for part in ref[2:].split("/"):
            node = node.get(part) if isinstance(node, dict) else None
        return node if isinstance(node, dict) else {}


def schema_instance(schema: Any, words: list[str], rng: random.Random) -> Any:
    """A value matching ``schema`` (an empty object for a missing or empty schema)."""
    if not isinstance(schema, dict) or not schema:
        return {}
    return _Builder(schema, words, rng).value(schema)
