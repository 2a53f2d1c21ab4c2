"""What every provider adapter looks like to the task runner.

A provider turns one generation request into outputs and usage. Synchronous upstreams (the ``local``
provider, OpenAI-style APIs) answer ``start`` with a ``Completed``; queue-based upstreams answer with a
``Submitted`` carrying the upstream job id, which the runner saves before it polls with ``poll``.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.catalog import Model, Route
from shared.catalog.pricing import Usage


@dataclass(frozen=True, slots=True)
class InputFile:
    """An input file of a request (``shared.media.inputs``): Conduit's copy, checked, with a signed expiring URL
    an upstream can fetch and the bytes for upstreams that take them (multipart, ``data:`` URIs)."""

    key: str
    content_type: str
    url: str
    data: bytes = field(repr=False)
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None

    @property
    def data_uri(self) -> str:
        return f"data:{self.content_type};base64,{base64.b64encode(self.data).decode()}"


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    task_id: uuid.UUID
    model: Model
    route: Route
    params: dict[str, Any]


@dataclass(slots=True)
class Output:
    """One produced artefact. Exactly one of ``data`` (bytes to store), ``url`` (to download) or ``text``."""

    type: str  # image | video | text
    content_type: str | None = None
    data: bytes | None = None
    url: str | None = None
    text: str | None = None
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    finish_reason: str | None = None  # text: why generation stopped ("stop", "length"), when the upstream says
    # chat: one output per choice; OpenAI's message.tool_calls and choice.logprobs, as the upstream sent them
    tool_calls: list[dict[str, Any]] | None = None
    logprobs: dict[str, Any] | None = None


@dataclass(slots=True)
class Completed:
    outputs: list[Output]
    usage: Usage
    # OpenAI's usage.prompt_tokens_details / completion_tokens_details, passed through to the client
    usage_details: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(slots=True)
class Submitted:
    """The upstream accepted the job; poll it later with ``upstream_id``."""

    upstream_id: str
    poll_after_s: float = 1.0
    progress: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Running:
    poll_after_s: float = 1.0
    progress: dict[str, Any] = field(default_factory=dict)


class ProviderError(Exception):
    """Base for classified upstream failures. ``code`` and ``message`` are safe to show to callers."""

    retryable: bool = False

    def __init__(self, message: str, *, code: str = "upstream_error", retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retry_after_s = retry_after_s


class RetryableError(ProviderError):
    """Timeouts, connection errors, 429 and 5xx: worth another attempt (here or on the next route)."""

    retryable = True


class PermanentError(ProviderError):
    """The request itself is refused (4xx, content policy): trying again or elsewhere will not help."""


class RouteError(PermanentError):
    """This route cannot serve any request (credentials refused, model unknown upstream): no retry here,
    but the next route may work. Counts against the provider's circuit breaker."""


class Provider(Protocol):
    name: str

    def configured(self) -> bool:
        """Whether credentials are present so that routes on this provider can be used."""
        ...

    async def start(self, request: GenerationRequest) -> Completed | Submitted: ...

    async def poll(self, request: GenerationRequest, upstream_id: str) -> Completed | Running: ...

    async def cancel(self, request: GenerationRequest, upstream_id: str) -> None: ...
