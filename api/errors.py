"""The one error shape, and the one table that maps domain errors to HTTP statuses.

    {"error": {"type": "...", "code": "...", "message": "...", "param": "..."}}

A 500 is a bug: it is answered with a generic message, logged with its stack trace and the request id, and
counted in ``conduit_http_unhandled_errors_total`` by route and exception class, so that crash paths show.

A lost database connection (PostgreSQL or PgBouncer restarting, a failover) is no bug: it is answered with
``503 database_unavailable`` and ``Retry-After``, which clients retry, logged as a warning without a stack trace
and counted in ``conduit_http_database_unavailable_total``.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException

from api.web.context import SignInRequired
from api.web.errors import error_page, handle_sign_in_required
from api.web.security import is_page_path
from shared.infra.db.lost import is_lost_connection
from shared.infra.errors import (
    BillingUnavailable,
    ConduitError,
    Conflict,
    InsufficientCredits,
    InvalidInput,
    ModelUnavailable,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
    Unauthenticated,
    UnsupportedMediaType,
    UpstreamFailed,
)
from shared.infra.metrics import METRICS
from shared.moderation.decisions import ContentPolicyViolation
from shared.openai_api.images import GenerationPending

log = logging.getLogger("conduit.api")

# domain error -> (HTTP status, error type)
DOMAIN_ERRORS: dict[type[ConduitError], tuple[int, str]] = {
    InvalidInput: (400, "invalid_request_error"),
    Unauthenticated: (401, "authentication_error"),
    InsufficientCredits: (402, "insufficient_credits_error"),
    PermissionDenied: (403, "permission_error"),
    NotFound: (404, "not_found_error"),
    Conflict: (409, "conflict_error"),
    RateLimited: (429, "rate_limit_error"),
    UpstreamFailed: (502, "upstream_error"),
    ModelUnavailable: (503, "service_unavailable_error"),
    ServiceUnavailable: (503, "service_unavailable_error"),
    PayloadTooLarge: (413, "invalid_request_error"),
    UnsupportedMediaType: (415, "invalid_request_error"),
    BillingUnavailable: (503, "service_unavailable_error"),
    # an image generation still running when the wait ran out (the error names its task)
    GenerationPending: (504, "timeout_error"),
    # refused by the operator's moderation policy (the message names the category)
    ContentPolicyViolation: (400, "invalid_request_error"),
}

# Litestar's own HTTP errors (routing, body parsing) -> (error type, code)
HTTP_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "unauthenticated"),
    403: ("permission_error", "permission_denied"),
    404: ("not_found_error", "route_not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "payload_too_large"),
    415: ("invalid_request_error", "unsupported_media_type"),
    429: ("rate_limit_error", "rate_limited"),
}


def error_body(type_: str, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"type": type_, "code": code, "message": message, "param": param}}


def error_response(
    status: int,
    type_: str,
    code: str,
    message: str,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    return Response(content=error_body(type_, code, message, param), status_code=status, headers=headers)


def domain_status(exc: ConduitError) -> tuple[int, str]:
    """The HTTP status and error type of a domain error."""
    for cls in type(exc).__mro__:
        if cls in DOMAIN_ERRORS:
            return DOMAIN_ERRORS[cls]
    return 400, "invalid_request_error"  # pragma: no cover - every domain error class is in the table


def handle_domain_error(request: Request[Any, Any, Any], exc: ConduitError) -> Response[Any]:
    status, type_ = domain_status(exc)
    headers = None
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    elif isinstance(exc, GenerationPending):
        headers = exc.headers
    if is_page_path(request.url.path):  # the website: an error page
        return error_page(status, exc.message)
    return error_response(status, type_, exc.code, exc.message, exc.param, headers)


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    page = is_page_path(request.url.path)
    if status >= 500:
        _count_crash(request, exc)
        log.error("HTTP %d on %s %s: %s", status, request.method, request.url.path, exc.detail)
        if page:
            return error_page(status, "An error on our side; it has been logged. Please try again.")
        return error_response(status, "api_error", "internal_error", "internal server error")
    type_, code = HTTP_ERRORS.get(status, ("invalid_request_error", "invalid_request"))
    message, param = str(exc.detail or "bad request"), None
    if isinstance(exc.__cause__, SerializationException):
        message, code = f"the request body is not valid JSON ({exc.detail})", "invalid_json"
    elif isinstance(exc, ValidationException):
        message, param, code = _describe_validation(exc)
    elif status == 404:
        message = "no such route; see the API documentation at /docs"
    elif status == 405:
        message = "this route does not accept that HTTP method"
    elif status == 413:
        message = "request body too large"
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() == "allow"}
    if page:
        return error_page(status, "There is no page at this address." if status == 404 else message)
    return error_response(status, type_, code, message, param, headers or None)


# What a client sees while the database is unreachable, and how long it should wait before it retries.
DATABASE_UNAVAILABLE = "database_unavailable"
DATABASE_UNAVAILABLE_MESSAGE = "the database is unavailable; retry shortly"
DATABASE_RETRY_AFTER_S = 2


def handle_internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if is_lost_connection(exc):
        return _database_unavailable(request, exc)
    _count_crash(request, exc)
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    if is_page_path(request.url.path):
        return error_page(500, "An error on our side; it has been logged. Please try again.")
    return error_response(500, "api_error", "internal_error", "internal server error; it has been logged")


def _database_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """503 with ``Retry-After``: the request's transaction did not commit, so a retry is safe."""
    route = str(request.scope.get("path_template") or "unmatched")
    METRICS.inc("conduit_http_database_unavailable", {"method": request.method, "route": route})
    # one line per request, no stack trace: during an outage every request in flight lands here
    log.warning("database unavailable on %s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    headers = {"Retry-After": str(DATABASE_RETRY_AFTER_S)}
    if is_page_path(request.url.path):
        page = error_page(503, "The service cannot reach its database just now. Please try again in a moment.")
        page.headers.update(headers)
        return page
    return error_response(
        503, "service_unavailable_error", DATABASE_UNAVAILABLE, DATABASE_UNAVAILABLE_MESSAGE, headers=headers
    )


def _count_crash(request: Request[Any, Any, Any], exc: Exception) -> None:
    route = str(request.scope.get("path_template") or "unmatched")  # the template, never the raw path
    labels = {"method": request.method, "route": route, "exception": type(exc).__name__}
    METRICS.inc("conduit_http_unhandled_errors", labels)


_FIELD = re.compile(r"field `([^`]+)`")
_PATH = re.compile(r"\s*- at `\$\.?([^`]*)`")


def _describe_validation(exc: ValidationException) -> tuple[str, str | None, str]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    if not extra:
        return str(exc.detail or "invalid request"), None, "invalid_request"
    first = extra[0] if isinstance(extra[0], dict) else {"message": str(extra[0])}
    message = str(first.get("message", "invalid request"))
    param = str(first["key"]) if first.get("key") else None
    if first.get("source") == "body" and param == "data" and message == "'data'":  # no body at all
        return "this request needs a JSON body; see the API documentation at /docs", None, "invalid_request"
    # Body errors come keyed "data"; name the field inside the body instead.
    path = _PATH.search(message)
    if path:
        message = _PATH.sub("", message)
        if path.group(1):
            param = path.group(1)
    elif param == "data":
        field = _FIELD.search(message)
        param = field.group(1) if field else None
    if param and param not in message:
        message = f"{param}: {message}"
    return message, param, "invalid_request"


EXCEPTION_HANDLERS: dict[Any, Any] = {
    SignInRequired: handle_sign_in_required,  # a dashboard page without a session
    ConduitError: handle_domain_error,
    HTTPException: handle_http_exception,
    Exception: handle_internal_error,
}
