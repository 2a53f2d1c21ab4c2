"""Parameter schemas from the catalog, and validation of a task's ``input`` against them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from shared.infra.errors import InvalidInput

TYPES = ("string", "integer", "number", "boolean", "messages", "image", "image_list", "video", "mask")
# Input media: an upload id, an http(s) URL or a data: URI each (``shared.media.inputs`` fetches and checks them);
# ``image_list`` is a list of them. The file kind each type takes:
MEDIA_KINDS = {"image": "image", "image_list": "image", "mask": "image", "video": "video"}
MEDIA_FORMS = ("upl_", "https://", "http://", "data:")
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    type: str
    description: str = ""
    required: bool = False
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    multiple_of: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    max_items: int | None = None
    choices: tuple[Any, ...] | None = None

    def schema(self) -> dict[str, Any]:
        """The public description shown in ``/v1/models``."""
        out: dict[str, Any] = {"type": self.type, "required": self.required}
        for key in (
            "description",
            "default",
            "minimum",
            "maximum",
            "multiple_of",
            "min_length",
            "max_length",
        ):
            value = getattr(self, key)
            if value not in (None, ""):
                out[key] = value
        if self.max_items is not None:
            out["max_items"] = self.max_items
        if self.choices is not None:
            out["choices"] = list(self.choices)
        return out


def parse_parameter(raw: dict[str, Any], *, where: str) -> Parameter:
    from shared.catalog import CatalogError

    name = raw.get("name")
    kind = raw.get("type")
    if not name or kind not in TYPES:
        raise CatalogError(f"{where}: parameter needs a name and a type in {TYPES}: {raw!r}")
    known = set(Parameter.__dataclass_fields__)
    unknown = set(raw) - known
    if unknown:
        raise CatalogError(f"{where}: parameter {name!r} has unknown keys {sorted(unknown)}")
    values = dict(raw)
    if "choices" in values:
        values["choices"] = tuple(values["choices"])
    parameter = Parameter(**values)
    problem = default_problem(parameter)
    if problem:
        raise CatalogError(f"{where}: {problem}")
    return parameter


def default_problem(parameter: Parameter) -> str | None:
    """Why the parameter's default is not a value a request may give (outside its range, wrong type), or None."""
    if parameter.default is None:
        return None
    try:
        _check(parameter, parameter.default)
    except InvalidInput as exc:
        return f"default of {parameter.name!r} is invalid: {exc.message}"
    return None


def validate_input(parameters: tuple[Parameter, ...], raw: Any) -> dict[str, Any]:
    """Return the input with defaults applied, or raise ``InvalidInput`` naming the parameter."""
    if not isinstance(raw, dict):
        raise InvalidInput("input must be a JSON object", param="input")
    by_name = {p.name: p for p in parameters}
    for key in raw:
        if key not in by_name:
            allowed = ", ".join(sorted(by_name))
            raise InvalidInput(f"unknown parameter {key!r}; this model accepts: {allowed}", param=f"input.{key}")
    result: dict[str, Any] = {}
    for parameter in parameters:
        if parameter.name in raw and raw[parameter.name] is not None:
            result[parameter.name] = _check(parameter, raw[parameter.name])
        elif parameter.required:
            raise InvalidInput(f"{parameter.name!r} is required", param=f"input.{parameter.name}")
        elif parameter.default is not None:
            result[parameter.name] = parameter.default
    return result


def _check(p: Parameter, value: Any) -> Any:
    param = f"input.{p.name}"
    if p.type == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise InvalidInput(f"{p.name!r} must be an integer", param=param)
        _check_range(p, value, param)
        if p.multiple_of and value % p.multiple_of:
            raise InvalidInput(f"{p.name!r} must be a multiple of {p.multiple_of}", param=param)
    elif p.type == "number":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidInput(f"{p.name!r} must be a number", param=param)
        _check_range(p, value, param)
    elif p.type == "boolean":
        if not isinstance(value, bool):
            raise InvalidInput(f"{p.name!r} must be true or false", param=param)
    elif p.type == "string":
        if not isinstance(value, str):
            raise InvalidInput(f"{p.name!r} must be a string", param=param)
        _check_length(p, value, param)
    elif p.type == "messages":
        value = _check_messages(p, value, param)
    elif p.type == "image_list":
        if not isinstance(value, list) or not value:
            raise InvalidInput(f"{p.name!r} must be a non-empty list of images", param=param)
        if p.max_items is not None and len(value) > p.max_items:
            raise InvalidInput(f"{p.name!r} may hold at most {p.max_items} images", param=param)
        for index, item in enumerate(value):
            _check_media_reference(p, item, f"{param}[{index}]")
    elif p.type in MEDIA_KINDS:
        _check_media_reference(p, value, param)
    if p.choices is not None and value not in p.choices:
        choices = ", ".join(map(str, p.choices))
        raise InvalidInput(f"{p.name!r} must be one of: {choices}", param=param)
    return value


def _check_media_reference(p: Parameter, value: Any, param: str) -> None:
    """The syntax of a file reference (the file itself is checked when it is fetched)."""
    if not isinstance(value, str) or not value.startswith(MEDIA_FORMS):
        raise InvalidInput(
            f"{p.name!r} must be an upload id (upl_…), an https URL or a data: URI", code="invalid_media", param=param
        )


def _check_range(p: Parameter, value: float, param: str) -> None:
    if p.minimum is not None and value < p.minimum:
        raise InvalidInput(f"{p.name!r} must be >= {p.minimum:g}", param=param)
    if p.maximum is not None and value > p.maximum:
        raise InvalidInput(f"{p.name!r} must be <= {p.maximum:g}", param=param)


def _check_length(p: Parameter, value: str, param: str) -> None:
    if p.min_length is not None and len(value) < p.min_length:
        raise InvalidInput(f"{p.name!r} must have at least {p.min_length} characters", param=param)
    if p.max_length is not None and len(value) > p.max_length:
        raise InvalidInput(f"{p.name!r} must have at most {p.max_length} characters", param=param)


def _check_messages(p: Parameter, value: Any, param: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise InvalidInput(f"{p.name!r} must be a non-empty list of messages", param=param)
    if p.max_items is not None and len(value) > p.max_items:
        raise InvalidInput(f"{p.name!r} may hold at most {p.max_items} messages", param=param)
    total = 0
    cleaned: list[dict[str, str]] = []
    for index, message in enumerate(value):
        where = f"{param}[{index}]"
        if not isinstance(message, dict):
            raise InvalidInput("each message must be an object with role and content", param=where)
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise InvalidInput(f"role must be one of: {', '.join(ROLES)}", param=f"{where}.role")
        if not isinstance(content, str):
            raise InvalidInput("content must be a string", param=f"{where}.content")
        extra = set(message) - {"role", "content", "name"}
        if extra:
            raise InvalidInput(f"unknown message field(s): {', '.join(sorted(extra))}", param=where)
        total += len(content)
        cleaned.append({"role": role, "content": content})
    if p.max_length is not None and total > p.max_length:
        raise InvalidInput(f"messages may hold at most {p.max_length} characters in all", param=param)
    return cleaned
