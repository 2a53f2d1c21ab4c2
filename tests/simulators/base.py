"""What every provider simulator shares: a Litestar app under uvicorn in the test process on a free port,
a record of every call it received, scripted faults, and a file host for output URLs.

A test scripts faults per operation (``sim.fail("chat", Fault(500), Fault(429, headers={"Retry-After":
"1"}))``); each call of that operation consumes the next fault, then the simulator answers normally.
Payloads follow the recorded examples in ``payloads/`` (taken from the providers' API documentation).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from litestar import Litestar, Request, Response, get
from litestar.params import FromPath

from tests.harness import AsgiServer, free_port

PAYLOADS = Path(__file__).parent / "payloads"


def payload(name: str) -> Any:
    return json.loads((PAYLOADS / f"{name}.json").read_text())


@dataclass
class Fault:
    """One scripted misbehaviour: wait ``delay_s``, then answer ``status`` with ``body`` (a JSON value, or
    raw ``bytes`` for malformed answers). ``status=None`` after a delay means "answer normally, late"."""

    status: int | None = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Call:
    operation: str
    method: str
    path: str
    body: Any
    headers: dict[str, str]
    at: float
    query: dict[str, str] = field(default_factory=dict)


class Simulator:
    """Subclasses define ``name``, ``auth_scheme`` (with ``key``, the credential they accept) and
    ``handlers()``. Queue-style simulators time their jobs with ``job_duration``."""

    name = "simulator"
    auth_scheme = "Bearer"
    default_finish_after_s = 0.3

    def __init__(self, key: str) -> None:
        self.key = key
        self.port = free_port()
        self.calls: list[Call] = []
        self.faults: dict[str, collections.deque[Fault]] = collections.defaultdict(collections.deque)
        self.files: dict[str, tuple[bytes, str]] = {}
        self.received_files: dict[str, bytes] = {}  # file inputs, by input name: fetched from URLs or decoded
        self.latency_s = 0.0
        self.finish_after_s = self.default_finish_after_s
        self._server: AsgiServer | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def job_duration(self, model: str) -> float:
        """How long a job of this model runs: ``…/never`` forever, ``…/slow`` 6 s, others ``finish_after_s``."""
        if model.endswith("/never"):
            return math.inf
        if model.endswith("/slow"):
            return 6.0
        return self.finish_after_s

    # -- test controls ------------------------------------------------------------------------------------

    def fail(self, operation: str, *faults: Fault) -> None:
        self.faults[operation].extend(faults)

    def reset(self) -> None:
        self.calls.clear()
        self.faults.clear()
        self.files.clear()
        self.received_files.clear()
        self.latency_s = 0.0
        self.finish_after_s = self.default_finish_after_s
        self.reset_state()

    def reset_state(self) -> None:
        """Subclasses forget their jobs here."""

    def calls_to(self, operation: str) -> list[Call]:
        return [call for call in self.calls if call.operation == operation]

    def host_file(self, name: str, data: bytes, content_type: str) -> str:
        self.files[name] = (data, content_type)
        return f"{self.origin}/files/{name}"

    # -- helpers for handlers -----------------------------------------------------------------------------

    async def enter(self, operation: str, request: Request[Any, Any, Any]) -> Response[Any] | None:
        """Record the call, check the credential, play the next scripted fault. None: answer normally."""
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        self.calls.append(
            Call(
                operation,
                request.method,
                request.url.path,
                body,
                dict(request.headers),
                time.monotonic(),
                dict(request.query_params),
            )
        )
        if request.headers.get("authorization") != f"{self.auth_scheme} {self.key}":
            return self.unauthorized()
        queue = self.faults.get(operation)
        fault = queue.popleft() if queue else None
        if fault is None:
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            return None
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault.status is None:
            return None
        content = fault.body if isinstance(fault.body, bytes) else json.dumps(fault.body or {}).encode()
        return Response(content, status_code=fault.status, headers=fault.headers, media_type="application/json")

    async def take_file_inputs(self, model_input: dict[str, Any], names: tuple[str, ...]) -> str | None:
        """Fetch (URL) or decode (data: URI) the file inputs ``names`` of a job (a URL each, or a list of them:
        ``name[i]``), as the upstream does before it runs; None when every one arrived, else what went wrong (the
        provider answers 422)."""
        for name in names:
            value = model_input.get(name)
            values = value if isinstance(value, list) else [value]
            for index, item in enumerate(values):
                if not isinstance(item, str):
                    continue
                label = f"{name}[{index}]" if isinstance(value, list) else name
                if item.startswith("data:"):
                    header, _, data = item.partition(",")
                    if not header.endswith(";base64"):
                        return f"{label}: not a base64 data URI"
                    self.received_files[label] = base64.b64decode(data)
                    continue
                async with httpx.AsyncClient(timeout=10) as http:
                    response = await http.get(item)
                if response.status_code != 200:
                    return f"{label}: could not fetch {item} (HTTP {response.status_code})"
                self.received_files[label] = response.content
        return None

    def unauthorized(self) -> Response[Any]:
        return Response({"detail": "Invalid token."}, status_code=401)

    def handlers(self) -> list[Any]:
        raise NotImplementedError

    # -- server ---------------------------------------------------------------------------------------------

    def app(self) -> Litestar:
        @get("/files/{name:str}", sync_to_thread=False)
        def serve_file(name: FromPath[str]) -> Response[bytes]:
            if name not in self.files:
                return Response(b"expired", status_code=404, media_type="text/plain")
            data, content_type = self.files[name]
            return Response(data, media_type=content_type)

        return Litestar(route_handlers=[serve_file, *self.handlers()], debug=False)

    async def start(self) -> None:
        self._server = AsgiServer(self.app(), self.port, name=f"{self.name} simulator")
        await self._server.start()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
