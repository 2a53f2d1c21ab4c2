"""HTTP to upstream APIs: one call, its errors classified, its JSON decoded.

Every adapter sends through ``send_json``. What a caller (and so a client of ours) may see is a
normalised ``code`` and a fixed message naming the provider: never the upstream's body, which can hold
anything from a stack trace to another customer's prompt. The body is logged (truncated) for operators.

Classification:

* timeouts, connection errors, 408, 429 (with ``Retry-After``), 500/502/503/504, malformed JSON in a
  success -> ``RetryableError`` (retried, then the next route);
* 401/403 (our credentials) and 404 (the model is unknown there) -> ``RouteError`` (next route at once);
* content-policy refusals -> ``PermanentError("content_policy_violation")``;
* 400/422 and other 4xx -> ``PermanentError("upstream_invalid_request" / "upstream_rejected")``.
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import time
from typing import Any

import httpx
import msgspec

from shared.catalog.providers import ResolvedProvider
from shared.providers.base import PermanentError, ProviderError, RetryableError, RouteError
from shared.providers.upstream_client import UpstreamClient

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({408, 500, 502, 503, 504})
_POLICY = re.compile(r"content[ _-]?policy|safety[ _-]?(system|checker|filter)|nsfw|moderation|flagged", re.I)
_LOGGED_BODY = 300
_decode = msgspec.json.decode


def parse_retry_after(headers: httpx.Headers, now: float | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or an HTTP date) or ``retry-after-ms``; None if absent."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def mentions_content_policy(body: Any) -> bool:
    """Whether an error body says the prompt or output was refused by a safety system."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            for key in ("code", "type"):
                if isinstance(error.get(key), str) and _POLICY.search(error[key]):
                    return True
        text = json.dumps(body)[:4000]
    else:
        text = str(body)[:4000]
    return bool(_POLICY.search(text))


def classify_status(provider: str, status: int, headers: httpx.Headers, body: Any) -> ProviderError:
    """The error for a non-success HTTP answer."""
    if status == 429:
        return RetryableError(
            f"{provider} is rate limiting requests",
            code="upstream_rate_limited",
            retry_after_s=parse_retry_after(headers),
        )
    if status in RETRYABLE_STATUSES:
        code = "upstream_timeout" if status in (408, 504) else "upstream_unavailable"
        return RetryableError(f"{provider} is temporarily unavailable (HTTP {status})", code=code)
    if status in (401, 403):
        return RouteError(f"{provider} refused our credentials", code="upstream_auth_failed")
    if status == 404:
        return RouteError(f"{provider} does not know this model or job", code="upstream_not_found")
    if 400 <= status < 500 and mentions_content_policy(body):
        return PermanentError(
            f"{provider} refused the request under its content policy", code="content_policy_violation"
        )
    if status in (400, 422):
        return PermanentError(f"{provider} rejected the request as invalid", code="upstream_invalid_request")
    if 400 <= status < 500:
        return PermanentError(f"{provider} rejected the request (HTTP {status})", code="upstream_rejected")
    return RetryableError(f"{provider} failed (HTTP {status})", code="upstream_unavailable")


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:_LOGGED_BODY]


async def send_json(
    client: UpstreamClient,
    method: str,
    url: str,
    *,
    provider: str,
    headers: dict[str, str],
    body: Any = None,
    timeout: httpx.Timeout | None = None,
    files: dict[str, tuple[str, bytes, str]] | None = None,
) -> Any:
    """One request; the decoded JSON of a 2xx answer, or a classified ``ProviderError``. With ``files`` the
    request is ``multipart/form-data``: ``body``'s fields (a flat object) and the files."""
    try:
        if files is not None:
            form_headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
            response = await client.request(method, url, headers=form_headers, data=body, files=files)
        else:
            response = await client.call(method, url, headers=headers, body=body, timeout=timeout)
    except httpx.TimeoutException as exc:
        raise RetryableError(f"{provider} did not answer in time", code="upstream_timeout") from exc
    except httpx.TransportError as exc:
        raise RetryableError(f"could not reach {provider}", code="upstream_unreachable") from exc
    if not response.is_success:
        error = classify_status(provider, response.status_code, response.headers, _body(response))
        log.warning(
            "%s %s %s -> HTTP %d (%s): %.300s",
            provider,
            method,
            url,
            response.status_code,
            error.code,
            response.text,
        )
        raise error
    if response.status_code == 204 or not response.content:
        return None
    try:
        return _decode(response.content)
    except msgspec.DecodeError as exc:
        log.warning("%s %s %s -> malformed JSON: %.300s", provider, method, url, response.text)
        raise RetryableError(f"{provider} sent a malformed response", code="upstream_bad_response") from exc


_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def job_id(provider: str, data: Any, field: str) -> str:
    """An upstream job id from a create answer; refused unless it is safe to put in a URL path."""
    value = data.get(field) if isinstance(data, dict) else None
    if not isinstance(value, str) or not _JOB_ID.fullmatch(value):
        raise malformed(provider, f"a valid {field}")
    return value


def malformed(provider: str, what: str) -> RetryableError:
    """A success answer whose JSON lacks what the protocol promises."""
    log.warning("%s sent a response without %s", provider, what)
    return RetryableError(f"{provider} sent a malformed response", code="upstream_bad_response")


class HttpProvider:
    """What the HTTP adapters share: the provider's resolved base URL and key, the process's client, the
    authorisation header (``Bearer <key>`` unless the protocol says otherwise) and a JSON call."""

    auth_scheme = "Bearer"

    def __init__(self, resolved: ResolvedProvider, http: UpstreamClient) -> None:
        self.name = resolved.spec.name
        self._resolved = resolved
        self._http = http

    def configured(self) -> bool:
        return self._resolved.configured

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._resolved.api_key:
            headers["Authorization"] = f"{self.auth_scheme} {self._resolved.api_key}"
        return headers

    def stream_target(self, path: str) -> tuple[httpx.AsyncClient, str, dict[str, str]]:
        """The client, URL and headers for a streamed call (``path`` relative to the base URL)."""
        return self._http, f"{self._resolved.base_url}{path}", self._headers()

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        """``path`` is relative to the provider's base URL."""
        return await send_json(
            self._http,
            method,
            f"{self._resolved.base_url}{path}",
            provider=self.name,
            headers=self._headers(),
            body=body,
        )

    async def _call_multipart(self, path: str, fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> Any:
        """A ``multipart/form-data`` POST (``path`` relative to the base URL)."""
        return await send_json(
            self._http,
            "POST",
            f"{self._resolved.base_url}{path}",
            provider=self.name,
            headers=self._headers(),
            body=fields,
            files=files,
        )

    async def _call_ignoring_refusal(self, method: str, path: str) -> None:
        """For cancels: a refusal means the job already finished or is gone, so there is nothing to stop."""
        try:
            await self._call(method, path)
        except PermanentError:
            return None
