"""Whom the per-IP limits count: the connection's peer, or, only when the peer is a trusted proxy
(``FORWARDED_ALLOW_IPS``), the client address it relays in ``X-Forwarded-For``.

The guarded server trusts the proxy at 127.0.0.5; its budget of invalid API keys per client IP shows whom it
counts. (The default, no trusted proxy at all, is tested with the sessions and ``/metrics``.)"""

from __future__ import annotations

import httpx

from tests.harness import ApiServer
from tests.integration.ratelimits.conftest import INVALID_KEYS_PER_MIN, TRUSTED_PROXY, client_from

BAD_KEY = {"Authorization": "Bearer cdt_" + "Proxy0" * 6 + "abcd"}


async def statuses(http: httpx.AsyncClient, forwarded_for: list[str]) -> list[int]:
    return [
        (await http.get("/v1/account", headers={**BAD_KEY, "X-Forwarded-For": value})).status_code
        for value in forwarded_for
    ]


async def test_forwarded_for_is_believed_from_the_trusted_proxy_only(guarded_api: ApiServer) -> None:
    budget = INVALID_KEYS_PER_MIN
    async with client_from(guarded_api, TRUSTED_PROXY) as proxy:
        # Through the trusted proxy each relayed client has a budget of its own ...
        relayed = [f"198.51.100.{n}" for n in range(1, budget + 3)]
        assert await statuses(proxy, relayed) == [401] * len(relayed)
        # ... and is the address the proxy saw (the right-most one): what a client wrote in the header it sent
        # the proxy does not move it to another budget.
        spoofed = [f"203.0.113.{n}, 198.51.100.200" for n in range(1, budget + 2)]
        assert await statuses(proxy, spoofed) == [401] * budget + [429]
    # From any other peer the header changes nothing: one budget, however the header varies.
    async with client_from(guarded_api, "127.0.0.6") as stranger:
        varied = [f"198.51.100.{n}" for n in range(100, 100 + budget + 2)]
        assert await statuses(stranger, varied) == [401] * budget + [429] * 2
