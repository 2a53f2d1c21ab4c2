"""The one place where the API decodes what a request carries, and refuses what it cannot safely hold.

Each refusal is a ``400`` in the error shape whose ``code`` and ``param`` name the problem:

* the target and the headers (``check_request_input``, the app's ``before_request`` hook, run before any
  parameter is parsed): the path and every query parameter must be UTF-8 without NUL characters, header values
  without NUL or other control characters (``invalid_input``; ``param`` names the query or path parameter, or
  the header);
* JSON bodies (``GuardedRequest.json``, what Litestar calls for a handler's ``data`` and what handlers call for
  the bodies they read themselves): a ``Content-Type`` that is JSON, or none (else ``415
  unsupported_media_type``); UTF-8 and valid JSON without a key twice in one object (``invalid_json``); at most
  ``MAX_JSON_DEPTH`` levels, ``MAX_JSON_ARRAY_ITEMS`` items per array, ``MAX_JSON_OBJECT_KEYS`` keys per object,
  no NUL in any key or string, integers that fit a BIGINT column (``invalid_input``, ``param`` naming the field);
* form fields, URL-encoded or multipart (``GuardedRequest.form``, parsed by the hook as soon as a form is sent):
  UTF-8 without NUL (``invalid_input``, ``param`` naming the field).

Narrower ranges of single fields (credit amounts, counts kept in INTEGER columns) are declared with the request
structs (``api.input_fields``); the longest strings are checked by the services that store them.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, ClassVar
from urllib.parse import unquote_to_bytes

import msgspec
from litestar import Request
from litestar.datastructures import FormMultiDict

from shared.infra.errors import InvalidInput, UnsupportedMediaType
from shared.settings import InputLimits

BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# Header values are visible characters, spaces and tabs (RFC 9110): never NUL, CR, LF or other controls.
_HEADER_CONTROLS = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_DECODER = msgspec.json.Decoder()


def _no_nul(text: str, param: str | None, what: str) -> None:
    if "\x00" in text:
        raise InvalidInput(f"{what} must not contain NUL characters", param=param)


# -- the target and the headers ----------------------------------------------------------------------------


async def check_request_input(request: Request[Any, Any, Any]) -> None:
    """Refuse a bad path, query parameter or header before anything reads it; parse a form at once, so that
    every form field is checked however the handler reads it."""
    scope = request.scope
    _check_path(scope.get("raw_path") or scope["path"].encode(), scope.get("path_params") or {})
    _check_encoded_pairs(scope.get("query_string", b""), "query parameter")
    for raw_name, raw_value in scope["headers"]:
        if _HEADER_CONTROLS.search(raw_value):
            name = raw_name.decode("latin-1")
            raise InvalidInput(f"the header {name!r} must not contain NUL or control characters", param=name)
    if request.content_type[0] in FORM_TYPES:
        await request.form()


def _check_path(raw_path: bytes, path_params: dict[str, Any]) -> None:
    def refuse(mark: str, problem: str) -> InvalidInput:  # names the path parameter that holds the mark
        names = [name for name, value in path_params.items() if isinstance(value, str) and mark in value]
        what = f"the path parameter {names[0]!r}" if names else "the path"
        return InvalidInput(f"{what} {problem}", param=names[0] if names else "path")

    try:
        path = unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        raise refuse("\ufffd", "must be UTF-8 text") from None
    if "\x00" in path:
        raise refuse("\x00", "must not contain NUL characters")


def _check_encoded_pairs(encoded: bytes, kind: str) -> None:
    """A query string or a URL-encoded form: every name and value must decode, strictly, to UTF-8 without NUL
    (the parsers that come after would replace what is not UTF-8, silently)."""
    for part in encoded.split(b"&"):
        if part:
            raw_name, _, raw_value = part.partition(b"=")
            name = _percent_decoded(raw_name, None, kind)
            _no_nul(name, name, f"a {kind}'s name")
            _no_nul(_percent_decoded(raw_value, name, kind), name, f"the {kind} {name!r}")


def _percent_decoded(raw: bytes, name: str | None, kind: str) -> str:
    try:
        return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        what = f"the {kind} {name!r}" if name is not None else f"a {kind}'s name"
        raise InvalidInput(f"{what} must be UTF-8 text", param=name) from None


# -- JSON bodies -------------------------------------------------------------------------------------------


def decode_json(body: bytes, limits: InputLimits) -> Any:
    """A JSON body as Python values, refused with a clear error unless every part of it can be kept."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the request body is not UTF-8 (at byte {exc.start})", code="invalid_json") from None
    try:
        value = _DECODER.decode(body)
    except msgspec.DecodeError as exc:
        hint = "; a \\u escape is an unpaired UTF-16 surrogate" if _SURROGATE_ESCAPE.search(text) else ""
        raise InvalidInput(f"the request body is not valid JSON ({exc}{hint})", code="invalid_json") from None
    except RecursionError:  # msgspec's own guard, far deeper than ours: find where ours was crossed
        raise _too_deep(limits, _first_too_deep(text, limits.json_max_depth)) from None
    _check_value(value, limits, "", 0)
    if isinstance(value, dict | list):
        try:
            json.loads(text, object_pairs_hook=_one_key_once)  # the same text, now known to be shallow
        except ValueError as exc:  # not expected once msgspec has read it; refused all the same
            raise InvalidInput(f"the request body is not valid JSON ({exc})", code="invalid_json") from None
    return value


# JSON tokens that open, close or separate values, and strings (with the colon that makes one a key)
_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"(\s*:)?|[\[\]{},]')


def _first_too_deep(text: str, max_depth: int) -> str | None:
    """The path of the first array or object nested deeper than ``max_depth``, found without recursion."""
    frames: list[list[Any]] = []  # per open container: its bracket, and the key or index being read
    for match in _STRUCTURE.finditer(text):
        token = match.group(0)
        if token[0] == '"':
            if match.group(1) and frames and frames[-1][0] == "{":
                frames[-1][1] = json.loads(token[: match.start(1) - match.start(0)])
        elif token in "[{":
            if len(frames) >= max_depth:
                path = ""
                for bracket, at in frames:  # as _check_value names it: a.b[0].c
                    path += f"[{at}]" if bracket == "[" else f".{at}" if path else str(at)
                return path or None
            frames.append([token, 0 if token == "[" else ""])
        elif token in "]}":
            if frames:
                frames.pop()
        elif frames and frames[-1][0] == "[":
            frames[-1][1] += 1
    return None


def _too_deep(limits: InputLimits, param: str | None) -> InvalidInput:
    where = param or "the request body"
    return InvalidInput(f"{where} is nested deeper than {limits.json_max_depth} levels", param=param)


def _check_value(value: Any, limits: InputLimits, path: str, depth: int) -> None:
    param = path or None
    if isinstance(value, str):
        _no_nul(value, param, path or "the request body")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not BIGINT_MIN <= value <= BIGINT_MAX:
            raise InvalidInput(f"{path or 'the number'} is out of range (at most 2^63 - 1 in size)", param=param)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"{path or 'the number'} is out of range", param=param)
    elif depth >= limits.json_max_depth:
        raise _too_deep(limits, param)
    elif isinstance(value, dict):
        if len(value) > limits.json_max_object_keys:
            raise InvalidInput(f"{path or 'the body'} has more than {limits.json_max_object_keys} keys", param=param)
        for key, item in value.items():
            _no_nul(key, param, f"a key in {path or 'the body'}")
            _check_value(item, limits, f"{path}.{key}" if path else key, depth + 1)
    elif isinstance(value, list):
        if len(value) > limits.json_max_array_items:
            raise InvalidInput(f"{path or 'the body'} has more than {limits.json_max_array_items} items", param=param)
        for index, item in enumerate(value):
            _check_value(item, limits, f"{path}[{index}]", depth + 1)


def _one_key_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise InvalidInput(
                f"the key {key!r} appears twice in one object; send each key once", code="invalid_json", param=key
            )
        found[key] = value
    return found


def _check_json_media_type(media_type: str, options: dict[str, str]) -> None:
    if media_type and media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(f"send the body as JSON (Content-Type: application/json), not {media_type!r}")
    charset = options.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(f"JSON bodies are UTF-8, not {charset!r}")


# -- the request class -------------------------------------------------------------------------------------


class GuardedRequest(Request[Any, Any, Any]):
    """Litestar's request, decoding JSON bodies and forms through the checks above (``guarded_request``)."""

    limits: ClassVar[InputLimits] = InputLimits()
    _decoded_json: Any = msgspec.UNSET
    _checked_form: FormMultiDict | None = None

    async def json(self) -> Any:
        if self._decoded_json is msgspec.UNSET:
            _check_json_media_type(*self.content_type)
            self._decoded_json = decode_json(await self.body(), self.limits)
        return self._decoded_json

    async def form(self) -> FormMultiDict:
        if self._checked_form is None:
            if self.content_type[0] == "application/x-www-form-urlencoded":
                _check_encoded_pairs(await self.body(), "form field")
            try:
                form = await super().form()
            except (UnicodeDecodeError, LookupError):  # a multipart field in another (or an unknown) charset
                raise InvalidInput("every form field must be UTF-8 text", param=None) from None
            for name, value in form.multi_items():
                _no_nul(name, None, "a form field's name")
                if isinstance(value, str):
                    _no_nul(value, name, f"the form field {name!r}")
            self._checked_form = form
        return self._checked_form


def guarded_request(limits: InputLimits) -> type[GuardedRequest]:
    """The app's ``request_class``, with these limits."""
    return type("GuardedRequest", (GuardedRequest,), {"limits": limits})
