"""The hostile-input corpus: for one operation of the OpenAPI document, the requests an attacker would try.

Each ``Probe`` is raw bytes (sent by ``rawhttp``): a query string, a path, headers or a body with one hostile
part in an otherwise valid request, so that the hostile part reaches as deep into the code as it can.
``must_refuse`` marks what is hostile beyond doubt (a NUL, bytes that are not UTF-8, nesting beyond the limit,
a number no column can store, a wrong content type, …): it must get a 4xx. Everything else (a long filter, a
negative number where one may be meaningful) must only never get a 5xx.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

PLACEHOLDER = "\u2063hostile\u2063"
PLACEHOLDER_JSON = json.dumps(PLACEHOLDER).encode()


@dataclass(frozen=True)
class Probe:
    what: str
    method: str
    target: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""
    must_refuse: bool = False
    protocol_level: bool = False  # may be refused by the HTTP server itself, before the app (plain text 400)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    query: tuple[str, ...] = ()
    path_params: tuple[str, ...] = ()
    header_params: tuple[str, ...] = ()
    json_body: bool = False
    body_required: bool = False
    example: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


# Valid bodies, so that a hostile value in one field is judged with every other field right.
EXAMPLES: dict[str, dict[str, Any]] = {
    "POST /v1/tasks": {
        "model": "flux-schnell",
        "input": {"prompt": "a lighthouse", "width": 256, "height": 256, "seed": 7},
        "metadata": {"order": "42"},
    },
    "POST /v1/chat/completions": {
        "model": "llama-3.1-8b-instruct",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4,
        "temperature": 0.5,
        "seed": 1,
    },
    "POST /v1/images/generations": {"model": "flux-schnell", "prompt": "a cat", "n": 1, "size": "256x256"},
    "POST /v1/webhooks/endpoints": {
        "url": "https://8.8.8.8/hook",  # an address: no DNS lookup
        "events": ["task.succeeded"],
        "description": "mine",
    },
    "PATCH /v1/webhooks/endpoints/{endpoint_id}": {"description": "mine", "enabled": True},
    "POST /v1/webhooks/endpoints/{endpoint_id}/rotate-secret": {"grace_period_s": 60},
    "POST /v1/webhooks/secret/rotate": {"grace_period_s": 60},
    "POST /v1/auth/signup": {"email": "someone@example.com", "password": "correct horse 42", "age_confirmed": True},
    "POST /v1/auth/signin": {"email": "someone@example.com", "password": "correct horse 42"},
    "POST /v1/auth/verify-email": {"token": "x" * 40},
    "POST /v1/auth/verify-email/resend": {"email": "someone@example.com"},
    "POST /v1/auth/password-reset": {"email": "someone@example.com"},
    "POST /v1/auth/password-reset/confirm": {"token": "x" * 40, "password": "correct horse 43"},
    "POST /v1/auth/password": {"current_password": "correct horse 42", "new_password": "correct horse 43"},
    "POST /v1/keys": {
        "name": "ci",
        "allowed_models": ["sdxl"],
        "spend_cap": 5,
        "rate_limits": {"requests_per_minute": 60},
    },
    "PATCH /v1/keys/{key_id}": {"name": "ci", "spend_cap": 5, "rate_limits": {"max_inflight_tasks": 2}},
    "POST /v1/promo-codes/redeem": {"code": "WELCOME"},
    "POST /v1/billing/checkout": {"product_id": "starter"},
    "DELETE /v1/account": {"password": "not the password"},
    "POST /v1/admin/accounts/{account}/credits": {"amount": 5, "reason": "goodwill", "operation_id": "op-1"},
    "POST /v1/admin/promo-codes": {
        "credits": 5,
        "code": "HOSTILE",
        "credit_validity_days": 30,
        "max_redemptions": 10,
        "description": "d",
    },
    "POST /v1/admin/tasks/{task_id}/fail": {"reason": "stuck"},
}

PATH_DEFAULTS = {"model_id": "flux-schnell", "provider": "google", "key": "outputs/x/0.png", "code": "WELCOME"}

# text put in a query value or a path segment (already percent-encoded) -> must it be refused?
HOSTILE_TEXT: dict[str, tuple[str, bool]] = {
    "NUL": ("a%00b", True),
    "bytes that are not UTF-8": ("%ff%fe", True),
    "an encoded lone surrogate": ("%ed%a0%80", True),
    "a code point above U+10FFFF": ("%f4%90%80%80", True),
    "CR LF": ("a%0d%0aSet-Cookie:%20x=1", False),
    "a huge number": ("9" * 40, False),
    "a negative number": ("-99999999999999999999", False),
    "NaN": ("NaN", False),
    "Infinity": ("-Infinity", False),
    "an exponent": ("1e400", False),
    "a long value": ("a" * 10_000, False),
    "a traversal": ("..%2f..%2fsecret_key", False),
}

# JSON text put in place of one value of a valid body -> must it be refused?
DEEP = b"[" * 10_000 + b"]" * 10_000
HOSTILE_JSON: dict[str, tuple[bytes, bool]] = {
    "NUL": (b'"a\\u0000b"', True),
    "bytes that are not UTF-8": (b'"\xff\xfe"', True),
    "a lone high surrogate": (b'"\\ud800"', True),
    "a lone low surrogate": (b'"x\\udfffy"', True),
    "10,000-level nesting": (DEEP, True),
    "a 100,000-item array": (b"[" + b"0," * 99_999 + b"0]", True),
    "a 20,000-key object": (b"{" + b",".join(b'"k%d":0' % i for i in range(20_000)) + b"}", True),
    "2**80": (str(2**80).encode(), True),
    "-2**80": (str(-(2**80)).encode(), True),
    "1e400": (b"1e400", True),
    "NaN": (b"NaN", True),
    "Infinity": (b"-Infinity", True),
    "1e30": (b"1e30", False),
    "-1": (b"-1", False),
    "a decimal string NaN": (b'"NaN"', False),
    "a decimal string of 1e999999": (b'"1e999999"', False),
    "a 100,000-character string": (b'"' + b"a" * 100_000 + b'"', False),
    "an object": (b'{"a": {}}', False),
    "true": (b"true", False),
}


def operations(document: dict[str, Any]) -> list[Operation]:
    found = []
    for path, item in document["paths"].items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            params = op.get("parameters", [])
            body = op.get("requestBody") or {}
            schema = body.get("content", {}).get("application/json", {}).get("schema", {})
            nullable = {"type": "null"} in schema.get("oneOf", [])
            label = f"{method.upper()} {path}"
            found.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    query=tuple(p["name"] for p in params if p["in"] == "query"),
                    path_params=tuple(p["name"] for p in params if p["in"] == "path"),
                    header_params=tuple(p["name"] for p in params if p["in"] == "header"),
                    json_body="application/json" in body.get("content", {}),
                    body_required=bool(body.get("required")) and not nullable,
                    example=EXAMPLES.get(label, {}),
                )
            )
    return found


def _path(op: Operation, hostile: dict[str, str] | None = None) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if hostile and name in hostile:
            return hostile[name]
        return quote(PATH_DEFAULTS.get(name, str(uuid.UUID(int=1))), safe="/")

    return re.sub(r"\{([^}:]+)(?::[^}]*)?\}", fill, op.path)


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    else:
        yield path


def _with_placeholder(value: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return PLACEHOLDER
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _with_placeholder(value[path[0]], path[1:])
    return copy


JSON = ((b"Content-Type", b"application/json"),)


def probes(op: Operation) -> Iterator[Probe]:
    """Every probe of one operation (without the caller's credentials)."""
    yield from _query_and_path_probes(op)
    yield from _header_probes(op)
    if op.method != "GET":
        yield from _body_probes(op)


def _query_and_path_probes(op: Operation) -> Iterator[Probe]:
    base = _path(op).encode()
    body = json.dumps(op.example).encode() if op.json_body else b""
    headers = JSON if op.json_body else ()
    for name in (*op.query, "undeclared"):
        for what, (text, must) in HOSTILE_TEXT.items():
            target = base + f"?{quote(name)}={text}".encode()
            yield Probe(f"query {name}: {what}", op.method, target, headers, body, must)
    for name in op.path_params:
        for what, (text, must) in HOSTILE_TEXT.items():
            target = _path(op, {name: text}).encode()
            yield Probe(f"path {name}: {what}", op.method, target, headers, body, must)


HOSTILE_HEADERS: dict[str, tuple[tuple[bytes, bytes], bool, bool]] = {
    # what: (header, must refuse, may be refused by the HTTP server)
    "NUL in a header": ((b"X-Note", b"a\x00b"), True, True),
    "NUL in Authorization": ((b"Authorization", b"Bearer cdt_\x00"), True, True),
    "NUL in the session cookie": ((b"Cookie", b"conduit_session=a\x00b"), True, True),
    "NUL in X-CSRF-Token": ((b"X-CSRF-Token", b"a\x00b"), True, True),
    "NUL in Idempotency-Key": ((b"Idempotency-Key", b"a\x00b"), True, True),
    "a bare CR in a header": ((b"X-Note", b"a\rb"), True, True),
    "a header split by LF": ((b"X-Note", b"a\nInjected: yes"), False, True),
    "Latin-1 bytes in Authorization": ((b"Authorization", b"Bearer cdt_\xff\xfe"), False, False),
    "Latin-1 bytes in Idempotency-Key": ((b"Idempotency-Key", b"\xff\xfe"), False, False),
    "a long Idempotency-Key": ((b"Idempotency-Key", b"k" * 4000), False, False),
    "a long session cookie": ((b"Cookie", b"conduit_session=" + b"c" * 4000), False, False),
    "a foreign Origin": ((b"Origin", b"http://\xff.example"), False, False),
    "a broken Content-Type": ((b"Content-Type", b"application/json; charset=\xff"), False, False),
    "a negative Content-Length": ((b"Content-Length", b"-1"), True, True),
    "a huge Content-Length": ((b"Content-Length", b"9" * 30), True, True),
    "a Content-Length that is not a number": ((b"Content-Length", b"ten"), True, True),
}


def _header_probes(op: Operation) -> Iterator[Probe]:
    target = _path(op).encode()
    body = json.dumps(op.example).encode() if op.json_body else b""
    for what, (header, must, protocol) in HOSTILE_HEADERS.items():
        headers = (header,) if header[0] == b"Content-Type" else (*(JSON if op.json_body else ()), header)
        yield Probe(what, op.method, target, headers, body, must, protocol)


def _body_probes(op: Operation) -> Iterator[Probe]:
    target = _path(op).encode()
    reads_json = op.json_body
    base = op.example or {"field": "value"}
    for leaf in _leaves(base):
        if not leaf:
            continue
        encoded = json.dumps(_with_placeholder(base, leaf)).encode()
        where = ".".join(str(part) for part in leaf)
        for what, (fragment, must) in HOSTILE_JSON.items():
            body = encoded.replace(PLACEHOLDER_JSON, fragment)
            yield Probe(f"body {where}: {what}", op.method, target, JSON, body, must and reads_json)
    valid = json.dumps(base).encode()
    first = next(iter(base))
    whole: dict[str, tuple[tuple[tuple[bytes, bytes], ...], bytes, bool]] = {
        "duplicate keys": (JSON, valid[:-1] + f", {json.dumps(first)}: null}}".encode(), True),
        "10,000-level nesting": (JSON, DEEP, True),
        "truncated JSON": (JSON, valid[:-1], True),
        "a JSON array": (JSON, b"[]", True),
        "a JSON string": (JSON, b'"x"', True),
        "a bare NaN": (JSON, b"NaN", True),
        "a byte-order mark": (JSON, b"\xef\xbb\xbf" + valid, False),
        "a 10 MB string": (JSON, b'{"x": "' + b"a" * 10_000_000 + b'"}', True),
        "text/plain": (((b"Content-Type", b"text/plain"),), valid, True),
        "application/xml": (((b"Content-Type", b"application/xml"),), b"<a>\x00</a>", True),
        "a form with a NUL": (((b"Content-Type", b"application/x-www-form-urlencoded"),), b"a=%00", True),
        "multipart without a boundary": (((b"Content-Type", b"multipart/form-data"),), b"--x\r\n", True),
        "multipart with a NUL field": (
            ((b"Content-Type", b"multipart/form-data; boundary=x"),),
            b'--x\r\nContent-Disposition: form-data; name="body"\r\n\r\na\x00b\r\n--x--\r\n',
            True,
        ),
        "no body": (JSON, b"", op.body_required),
    }
    for what, (headers, body, must) in whole.items():
        yield Probe(f"whole body: {what}", op.method, target, headers, body, must and reads_json)
