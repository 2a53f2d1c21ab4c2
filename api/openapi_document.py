"""The OpenAPI document (``/docs/openapi.json``), corrected where Litestar's generation does not say what the
API answers: every 4xx and 5xx is the one error shape (``api.errors``), never Litestar's own validation error
body; a ``204`` has no body."""

from __future__ import annotations

from litestar.openapi.spec import OpenAPI, OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Reference, Schema

_TEXT = Schema(type=OpenAPIType.STRING)
ERROR_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["error"],
    properties={
        "error": Schema(
            type=OpenAPIType.OBJECT,
            required=["type", "code", "message", "param"],
            properties={
                "type": _TEXT,
                "code": _TEXT,
                "message": _TEXT,
                "param": Schema(one_of=[_TEXT, Schema(type=OpenAPIType.NULL)]),
            },
        )
    },
    description="Every error: its kind (type), a stable code, a message safe to show, the parameter at fault",
)


def describe_answers(document: OpenAPI) -> None:
    """Correct the answers of every operation of the document, in place."""
    assert document.components is not None
    document.components.schemas = {**(document.components.schemas or {}), "Error": ERROR_SCHEMA}
    error = {"application/json": OpenAPIMediaType(schema=Reference(ref="#/components/schemas/Error"))}
    refused = OpenAPIResponse(description="The request was refused (the error shape)", content=error)
    failed = OpenAPIResponse(description="Something failed on our side or upstream (the error shape)", content=error)
    for item in (document.paths or {}).values():
        for operation in (item.get, item.put, item.post, item.delete, item.patch):
            if operation is None:
                continue
            answers = {status: answer for status, answer in (operation.responses or {}).items() if status[0] in "123"}
            if isinstance(no_content := answers.get("204"), OpenAPIResponse):
                no_content.content = None
            operation.responses = {**answers, "4XX": refused, "5XX": failed}
