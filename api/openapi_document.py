"""The OpenAPI document (``/docs/openapi.json``), completed where Litestar's generation does not say what the API
answers: each operation's errors (every status it can answer, each in the one error shape of ``api.errors`` with
the codes it can carry, never Litestar's own validation body) and the credentials it accepts, both gathered from
the ``api.contract`` declarations of the route and of the dependencies it uses; a ``204`` has no body; credit
amounts are numbers; list envelopes get readable names (``TaskPage``, ``ModelList``); an operation without its
own summary is summarised from its id (``createTask``: "Create task")."""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
    SecurityRequirement,
    SecurityScheme,
)
from litestar.plugins import OpenAPISchemaPlugin
from litestar.routes import HTTPRoute
from litestar.typing import FieldDefinition
from litestar.utils.helpers import unwrap_partial

from api.contract import API_KEY, CSRF, SESSION, ReadBody, accepted_schemes, declared_body, declared_errors
from api.deps import CSRF_HEADER, SAFE_METHODS, SESSION_COOKIE
from api.errors import DATABASE_UNAVAILABLE, DOMAIN_ERRORS
from shared.infra.errors import ConduitError
from shared.ledger.money import Credits

_TEXT = Schema(type=OpenAPIType.STRING)
ERROR_DETAIL_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["type", "code", "message", "param"],
    properties={
        "type": _TEXT,
        "code": _TEXT,
        "message": _TEXT,
        "param": Schema(one_of=[_TEXT, Schema(type=OpenAPIType.NULL)]),
    },
    description="Its kind (type), a stable code, a message safe to show, the parameter at fault (or null)",
)
ERROR_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["error"],
    properties={"error": Reference(ref="#/components/schemas/ErrorDetail")},
    description="Every error (api.errors): the one shape of every 4xx and 5xx",
)

SECURITY_SCHEMES: dict[str, SecurityScheme | Reference] = {
    API_KEY: SecurityScheme(
        type="http", scheme="bearer", bearer_format="cdt_...", description="An API key: `Authorization: Bearer cdt_...`"
    ),
    SESSION: SecurityScheme(
        type="apiKey",
        name=SESSION_COOKIE,
        security_scheme_in="cookie",
        description="The dashboard's session cookie, set by `POST /v1/auth/signin`",
    ),
    CSRF: SecurityScheme(
        type="apiKey",
        name=CSRF_HEADER,
        security_scheme_in="header",
        description="The session's CSRF token (`csrf_token` of sign-in and `GET /v1/auth/session`), sent with the "
        "session cookie on any request that changes something",
    ),
}

# Errors any route can answer: a refused header, query or path (request_input), a failure on our side, the
# database unreachable for a moment (api.errors: retry after Retry-After).
_ANY_ROUTE = {400: {"invalid_input"}, 500: {"internal_error"}, 503: {DATABASE_UNAVAILABLE}}
_WITH_PARAMETERS = {400: {"invalid_request"}}
_WITH_BODY = {400: {"invalid_request", "invalid_json"}, 413: {"payload_too_large"}, 415: {"unsupported_media_type"}}


class CreditsSchema(OpenAPISchemaPlugin):
    """Credit amounts (``shared.ledger.money.Credits``) are JSON numbers with up to six decimals."""

    @staticmethod
    def is_plugin_supported_type(value: Any) -> bool:
        return value is Credits

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        return Schema(type=OpenAPIType.NUMBER, description="credits (up to six decimals)")


@dataclass(frozen=True, slots=True)
class DocumentedOperation:
    """One operation of the document and the route handler that answers it."""

    method: str
    path: str
    handler: HTTPRouteHandler
    operation: Operation

    @property
    def name(self) -> str:
        fn = unwrap_partial(self.handler.fn)
        return f"{self.method} {self.path} ({fn.__module__}.{fn.__qualname__})"

    def providers(self) -> list[Callable[..., Any]]:
        """The dependency providers this handler uses, directly or through other dependencies."""
        resolved = self.handler.resolve_dependencies()
        pending, seen, used = list(self.handler.parsed_fn_signature.parameters), set(), []
        while pending:
            name = pending.pop(0)
            if name in seen or name not in resolved:
                continue
            seen.add(name)
            provide = resolved[name]
            used.append(unwrap_partial(provide.dependency))
            pending.extend(provide.parsed_fn_signature.parameters)
        return used


def documented_operations(app: Litestar) -> Iterator[DocumentedOperation]:
    """Every operation of the app's document, with its handler."""
    paths = app.openapi_schema.paths or {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or (route.path_format or "/") not in paths:
            continue
        item = paths[route.path_format or "/"]
        for method, (handler, _) in route.route_handler_map.items():
            operation = getattr(item, method.lower(), None)
            if operation is not None and handler.resolve_include_in_schema():
                yield DocumentedOperation(method, route.path_format or "/", handler, operation)


def status_of(cls: type[ConduitError]) -> int:
    return next(DOMAIN_ERRORS[base][0] for base in cls.__mro__ if base in DOMAIN_ERRORS)


def error_statuses(documented: DocumentedOperation) -> dict[int, set[str]]:
    """Every error status the operation can answer, with the codes each can carry."""
    operation = documented.operation
    answers: dict[int, set[str]] = defaultdict(set)
    shapes = [_ANY_ROUTE]
    if operation.parameters:
        shapes.append(_WITH_PARAMETERS)
    if operation.request_body:
        shapes.append(_WITH_BODY)
    for shape in shapes:
        for status, codes in shape.items():
            answers[status] |= codes
    for fn in [unwrap_partial(documented.handler.fn), *documented.providers()]:
        for cls, declared in declared_errors(fn):
            answers[status_of(cls)] |= set(declared)
    if "{" in documented.path and 404 not in answers:
        answers[404].add("not_found")
    return dict(sorted(answers.items()))


def security_of(documented: DocumentedOperation) -> list[SecurityRequirement]:
    """The credentials the operation accepts, alternatives in order; empty for a public operation."""
    schemes = accepted_schemes(documented.providers()) or ()
    changes = documented.method not in SAFE_METHODS
    return [{SESSION: [], CSRF: []} if scheme == SESSION and changes else {scheme: []} for scheme in schemes]


def describe_answers(app: Litestar) -> None:
    """Complete the app's document in place: every operation's errors, security, self-read body and summary; the
    names of list envelopes."""
    document = app.openapi_schema
    assert document.components is not None
    document.components.schemas = {
        **(document.components.schemas or {}),
        "Error": ERROR_SCHEMA,
        "ErrorDetail": ERROR_DETAIL_SCHEMA,
    }
    document.components.security_schemes = SECURITY_SCHEMES
    error = {"application/json": OpenAPIMediaType(schema=Reference(ref="#/components/schemas/Error"))}
    for documented in documented_operations(app):
        operation = documented.operation
        if (declared := declared_body(unwrap_partial(documented.handler.fn))) is not None:
            operation.request_body = _request_body(document, declared)
        # the route's own answers (Litestar adds a 400 of its own validation body: replaced by the error shape)
        answers = {status: answer for status, answer in (operation.responses or {}).items() if status != "400"}
        if isinstance(no_content := answers.get("204"), OpenAPIResponse):
            no_content.content = None
        own = {str(status) for status in documented.handler.responses or {}}  # e.g. /readyz's 503: its report
        for status, codes in error_statuses(documented).items():
            if str(status) in own:
                continue
            kind = "The request was refused" if status < 500 else "Something failed on our side or upstream"
            described = f"{kind} (the error shape): {HTTPStatus(status).phrase}; code: {', '.join(sorted(codes))}"
            answers[str(status)] = OpenAPIResponse(description=described, content=error)
        operation.responses = answers
        operation.security = security_of(documented)
        if documented.handler.summary is None and operation.operation_id:  # not Litestar's "Submit" or "Account"
            operation.summary = _words(operation.operation_id)
    _name_generic_components(document)


_FIELD_TYPES = {
    msgspec.inspect.StrType: OpenAPIType.STRING,
    msgspec.inspect.BoolType: OpenAPIType.BOOLEAN,
    msgspec.inspect.IntType: OpenAPIType.INTEGER,
}


def _request_body(document: OpenAPI, declared: ReadBody) -> RequestBody:
    """The body of a route that parses it itself (``api.contract.reads``): JSON of its fields (unless multipart
    only), and with files multipart/form-data of the same fields plus the file parts."""
    body = declared.fields
    info = msgspec.inspect.type_info(body)
    assert isinstance(info, msgspec.inspect.StructType)
    properties: dict[str, Schema | Reference] = {
        field.encode_name: Schema(type=_FIELD_TYPES[type(field.type)]) for field in info.fields
    }
    required = [field.encode_name for field in info.fields if field.required]
    content: dict[str, OpenAPIMediaType] = {}
    if not declared.multipart_only:
        assert document.components is not None
        document.components.schemas = {
            **(document.components.schemas or {}),
            body.__name__: Schema(
                type=OpenAPIType.OBJECT, properties=properties, required=required, title=body.__name__
            ),
        }
        content["application/json"] = OpenAPIMediaType(schema=Reference(ref=f"#/components/schemas/{body.__name__}"))
    if declared.files:
        binary = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
        names = declared.files
        if isinstance(names, tuple):
            file_parts: dict[str, Schema | Reference] = {name: binary for name in names}
        else:
            file_parts = {"files": Schema(type=OpenAPIType.ARRAY, items=binary)}
        content["multipart/form-data"] = OpenAPIMediaType(
            schema=Schema(
                type=OpenAPIType.OBJECT,
                properties={**properties, **file_parts},
                required=[*required, *declared.required_files] or None,
            )
        )
    return RequestBody(content=content, required=True)


def _words(operation_id: str) -> str:
    """``createTask`` -> ``Create task``."""
    return re.sub(r"(?<!^)([A-Z])", lambda match: " " + match.group(1).lower(), operation_id).capitalize()


_GENERIC = re.compile(r"(\w+?)(?:Envelope)?\[(\w+)\]")


def _name_generic_components(document: OpenAPI) -> None:
    """``PageEnvelope[Task]`` (keyed by Litestar with module paths) becomes the component ``TaskPage``."""
    assert document.components is not None
    schemas = document.components.schemas or {}
    renamed: dict[str, str] = {}
    for key, schema in schemas.items():
        match = _GENERIC.fullmatch(schema.title or "") if isinstance(schema, Schema) else None
        if match:
            renamed[key] = f"{match.group(2)}{match.group(1)}"
    if not renamed:
        return
    document.components.schemas = {renamed.get(key, key): schema for key, schema in schemas.items()}
    for name in renamed.values():
        schema = document.components.schemas[name]
        assert isinstance(schema, Schema)
        schema.title = name
    prefix = "#/components/schemas/"
    _rewrite_references(document, {prefix + key: prefix + name for key, name in renamed.items()})


def _rewrite_references(node: Any, refs: dict[str, str]) -> None:
    if isinstance(node, Reference):
        node.ref = refs.get(node.ref, node.ref)
    elif dataclasses.is_dataclass(node):
        for field in dataclasses.fields(node):
            _rewrite_references(getattr(node, field.name), refs)
    elif isinstance(node, dict):
        for value in node.values():
            _rewrite_references(value, refs)
    elif isinstance(node, list | tuple):
        for value in node:
            _rewrite_references(value, refs)
