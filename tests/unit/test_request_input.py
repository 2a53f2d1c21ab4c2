"""Decoding request input: the limits exactly at their edges, the param each refusal names, and checks that the
HTTP server in front usually makes unreachable (control characters in headers), driven through the ASGI app."""

from __future__ import annotations

import json
from typing import Any

import pytest

from api.app import create_app
from api.request_input import decode_json
from shared.infra.errors import InvalidInput
from shared.settings import InputLimits, Settings

LIMITS = InputLimits(json_max_depth=4, json_max_array_items=3, json_max_object_keys=2)


def nested(levels: int) -> bytes:
    return b'{"a": ' * (levels - 1) + b"[1]" + b"}" * (levels - 1)


def refusal(body: bytes, limits: InputLimits = LIMITS) -> InvalidInput:
    with pytest.raises(InvalidInput) as refused:
        decode_json(body, limits)
    return refused.value


def test_values_within_the_limits_come_back_as_decoded() -> None:
    body = {"a": {"b": {"c": [1, 2, 3]}}, "n": 2**63 - 1}
    assert decode_json(json.dumps(body).encode(), LIMITS) == body
    assert decode_json(nested(4), LIMITS) == {"a": {"a": {"a": [1]}}}


@pytest.mark.parametrize(
    ("body", "code", "param", "message"),
    [
        (nested(5), "invalid_input", "a.a.a.a", "nested deeper than 4 levels"),
        (b"[" * 5000 + b"]" * 5000, "invalid_input", "[0][0][0][0]", "nested deeper than 4 levels"),
        (b'[1, "a,]", {"k\\"": ' + b"[" * 5000 + b"]" * 5000 + b"}]", "invalid_input", '[2].k"[0][0]', "nested"),
        (b'{"a": [1, 2, 3, 4]}', "invalid_input", "a", "more than 3 items"),
        (b'{"a": 1, "b": 2, "c": 3}', "invalid_input", None, "more than 2 keys"),
        (b'{"a": {"x\\u0000": 1}}', "invalid_input", "a", "must not contain NUL"),
        (b'{"a": [{"b": "x\\u0000"}]}', "invalid_input", "a[0].b", "must not contain NUL"),
        (b'{"n": 9223372036854775808}', "invalid_input", "n", "out of range"),
        (b'{"n": -9223372036854775809}', "invalid_input", "n", "out of range"),
        (b'{"n": 1e400}', "invalid_json", None, "Number out of range"),
        (b'{"a": {"b": 1, "b": 2}}', "invalid_json", "b", "appears twice"),
        (b'{"a": "\xc3\x28"}', "invalid_json", None, "not UTF-8 (at byte 7)"),
        (b'{"a": "\\ud800"}', "invalid_json", None, "unpaired UTF-16 surrogate"),
        (b'{"a": NaN}', "invalid_json", None, "not valid JSON"),
    ],
)
def test_refusals_name_the_problem_and_the_field(body: bytes, code: str, param: str | None, message: str) -> None:
    refused = refusal(body)
    assert (refused.code, refused.param) == (code, param)
    assert message in refused.message


def test_the_default_limits_are_the_documented_ones() -> None:
    defaults = Settings.from_env({}).input_limits
    limits = (defaults.json_max_depth, defaults.json_max_array_items, defaults.json_max_object_keys)
    assert limits == (32, 10_000, 1_000)
    assert decode_json(nested(32), defaults)
    assert refusal(nested(33), defaults).param == "a" + ".a" * 31
    assert refusal(nested(5000), defaults).param == "a" + ".a" * 31  # past the decoder's own recursion limit


APP = create_app(Settings())  # no lifespan: nothing connects; /healthz needs no services


async def call(path: str, headers: list[tuple[bytes, bytes]], query: bytes = b"") -> tuple[int, dict[str, Any]]:
    """One GET through the ASGI app itself, with headers no HTTP client would send."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
        "root_path": "",
        "state": {},
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await APP(scope, receive, send)  # type: ignore[arg-type]
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body)


@pytest.mark.parametrize("value", [b"a\x00b", b"a\x01b", b"a\rb", b"a\x7f"])
async def test_control_characters_in_a_header_are_refused_by_name(value: bytes) -> None:
    status, body = await call("/healthz", [(b"x-note", value)])
    assert status == 400
    assert (body["error"]["code"], body["error"]["param"]) == ("invalid_input", "x-note")


async def test_a_query_name_that_is_not_utf8_is_refused() -> None:
    status, body = await call("/healthz", [], query=b"%ff=1")
    assert status == 400
    assert body["error"]["code"] == "invalid_input" and "name must be UTF-8" in body["error"]["message"]
    assert (await call("/healthz", [(b"x-note", b"tab\tand latin-1 \xe9")]))[0] == 200
