"""The upstream client's direct JSON path: what goes on the wire, and what it does not carry between calls."""

from __future__ import annotations

import json

import httpx
import pytest

from shared.providers.upstream_client import UpstreamClient


def client_recording(seen: list[httpx.Request], answer: httpx.Response) -> UpstreamClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer

    return UpstreamClient(
        transport=httpx.MockTransport(handler),
        user_agent="conduit-test",
        timeout=httpx.Timeout(7.0, connect=2.0, pool=3.0),
    )


async def test_call_sends_json_with_the_client_user_agent_and_default_timeout() -> None:
    seen: list[httpx.Request] = []
    client = client_recording(seen, httpx.Response(200, json={"ok": True}))
    response = await client.call(
        "POST",
        "https://up.example/v1/chat/completions",
        headers={"Authorization": "Bearer k", "Content-Type": "application/json"},
        body={"model": "m", "messages": [{"role": "user", "content": "é"}]},
    )
    assert response.status_code == 200 and response.json() == {"ok": True}
    [sent] = seen
    assert sent.method == "POST" and str(sent.url) == "https://up.example/v1/chat/completions"
    assert sent.headers["user-agent"] == "conduit-test"
    assert sent.headers["authorization"] == "Bearer k"
    assert sent.headers["content-type"] == "application/json"
    assert json.loads(sent.content) == {"model": "m", "messages": [{"role": "user", "content": "é"}]}
    assert int(sent.headers["content-length"]) == len(sent.content)
    assert sent.extensions["timeout"] == {"connect": 2.0, "read": 7.0, "write": 7.0, "pool": 3.0}


async def test_call_without_body_sends_none_and_honours_a_per_call_timeout() -> None:
    seen: list[httpx.Request] = []
    client = client_recording(seen, httpx.Response(204))
    response = await client.call("GET", "https://up.example/v1/jobs/1", headers={}, timeout=httpx.Timeout(1.5))
    assert response.status_code == 204 and response.content == b""
    assert seen[0].content == b""
    assert seen[0].extensions["timeout"] == {"connect": 1.5, "read": 1.5, "write": 1.5, "pool": 1.5}


async def test_cookies_set_by_an_upstream_never_travel_to_the_next_call() -> None:
    seen: list[httpx.Request] = []
    answer = httpx.Response(200, json={}, headers={"Set-Cookie": "session=someone-elses; Path=/"})
    client = client_recording(seen, answer)
    for _ in range(2):
        await client.call("POST", "https://up.example/v1/x", headers={}, body={})
    assert "cookie" not in seen[1].headers
    assert not client.cookies


async def test_transport_errors_are_httpx_errors() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = UpstreamClient(transport=httpx.MockTransport(refuse), user_agent="conduit-test")
    with pytest.raises(httpx.ConnectError):
        await client.call("POST", "https://up.example/v1/x", headers={}, body={})
