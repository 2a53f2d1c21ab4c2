"""The OpenAPI document is a contract clients generate from: it is valid; every operation has a committed, readable
operation id and tags; documents a typed success body, the errors it can answer (in the one error shape) and the
credentials it accepts. A failure names the route and what it lacks (see CONTRIBUTING, "Adding a route")."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from litestar.openapi.spec import OpenAPIResponse
from openapi_spec_validator import validate

from api.app import create_app
from api.openapi_document import DocumentedOperation, documented_operations
from shared.settings import Settings

APP = create_app(Settings())
DOCUMENT: dict[str, Any] = APP.openapi_schema.to_schema()
OPERATIONS = list(documented_operations(APP))
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]
COMMITTED = Path(__file__).with_name("openapi_operations.txt")
OPERATION_ID = re.compile(r"[a-z][A-Za-z0-9]*")
COMPONENT_NAME = re.compile(r"[A-Z][A-Za-z0-9]*")
NON_JSON = ("text/", "image/", "application/octet-stream", "application/pdf")


def listing(documented: DocumentedOperation) -> str:
    """One line of the committed list: id, method, path, tags, accepted credentials."""
    operation = documented.operation
    security = " | ".join("+".join(requirement) for requirement in operation.security or []) or "public"
    tags = ",".join(operation.tags or [])
    return f"{operation.operation_id} {documented.method} {documented.path} [{tags}] {security}"


def test_the_document_is_valid_openapi() -> None:
    validate(DOCUMENT)  # raises with the first violation
    assert json.loads(json.dumps(DOCUMENT)) == DOCUMENT  # plain JSON: no example objects left in it


def test_declared_errors_come_with_their_status_and_codes() -> None:
    """A route's own errors and those of its dependencies (authentication, limits) are in its answers."""
    answers = DOCUMENT["paths"]["/v1/tasks"]["post"]["responses"]
    assert "insufficient_credits, spend_cap_exceeded" in answers["402"]["description"]
    assert "idempotency_key_reused" in answers["409"]["description"]
    assert "too_many_concurrent_tasks" in answers["429"]["description"]  # the task admission dependency
    assert "csrf_failed" in answers["403"]["description"]  # the session's CSRF check
    admin = DOCUMENT["paths"]["/v1/admin/accounts/{account}"]["get"]["responses"]
    assert "admin_only" in admin["403"]["description"] and "account_not_found" in admin["404"]["description"]
    public = DOCUMENT["paths"]["/v1/models"]["get"]
    assert public["security"] == [] and set(public["responses"]) == {"200", "400", "500", "503"}
    assert "database_unavailable" in public["responses"]["503"]["description"]


def test_operation_ids_are_explicit_readable_and_committed() -> None:
    missing = [d.name for d in OPERATIONS if not isinstance(d.handler.operation_id, str)]
    assert not missing, "give these routes an operation_id= (verbNoun, e.g. createTask):\n" + "\n".join(missing)
    unreadable = [d.name for d in OPERATIONS if not OPERATION_ID.fullmatch(d.operation.operation_id or "")]
    assert not unreadable, "operation ids are lowerCamelCase (createTask):\n" + "\n".join(unreadable)
    untagged = [d.name for d in OPERATIONS if not d.operation.tags]
    assert not untagged, "give these routes (or their controller) tags:\n" + "\n".join(untagged)
    current = sorted(listing(d) for d in OPERATIONS)
    committed = COMMITTED.read_text().splitlines()
    added, removed = sorted(set(current) - set(committed)), sorted(set(committed) - set(current))
    assert not added and not removed, (
        f"the operations differ from {COMMITTED.name} (operation ids, tags and credentials are a contract: "
        "change them deliberately, then update the file)\n"
        + "".join(f"+ {line}\n" for line in added)
        + "".join(f"- {line}\n" for line in removed)
    )


def untyped(schema: dict[str, Any], where: str, seen: set[str]) -> list[str]:
    """The places under ``schema`` that say nothing of their value (``{}``, or an object without properties)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return []
        seen.add(name)
        return untyped(SCHEMAS[name], name, seen)
    if not schema:
        return [where]
    found: list[str] = []
    for key in ("oneOf", "anyOf", "allOf"):
        for index, part in enumerate(schema.get(key, [])):
            found += untyped(part, f"{where}.{key}[{index}]", seen)
    if schema.get("type") == "object" and "properties" not in schema and "additionalProperties" not in schema:
        found.append(where)
    for name, field in schema.get("properties", {}).items():
        found += untyped(field, f"{where}.{name}", seen)
    if isinstance(schema.get("items"), dict):
        found += untyped(schema["items"], f"{where}[]", seen)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and extra:  # {}: a map of any JSON (e.g. a task's input): typed enough
        found += untyped(extra, f"{where}{{}}", seen)
    return found


def success_problems(documented: DocumentedOperation) -> list[str]:
    answers = documented.operation.responses or {}
    successes = {status: answer for status, answer in answers.items() if status[0] in "23"}
    if not successes:
        return ["no success answer"]
    problems = []
    for status, answer in successes.items():
        content = (answer.content if isinstance(answer, OpenAPIResponse) else None) or {}
        if not content:
            if status != "204" and status[0] != "3":
                problems.append(f"{status} has no body schema")
            continue
        for media_type, media in content.items():
            schema = media.schema.to_schema() if media.schema is not None else {}
            if media_type.startswith(NON_JSON):
                continue
            alternatives = schema.get("oneOf", [schema])  # e.g. signed in, or a second factor required
            if not all("$ref" in alternative for alternative in alternatives):
                problems.append(f"{status} {media_type} is not a named type (return a msgspec.Struct): {schema}")
                continue
            for alternative in alternatives:
                for place in untyped(alternative, "body", set()):
                    problems.append(f"{status}: {place} is untyped (declare the field's type)")
    return problems


def error_problems(documented: DocumentedOperation) -> list[str]:
    answers = documented.operation.responses or {}
    expected = {"400", "500", "503"}  # 503: the database unreachable for a moment
    if documented.operation.security:
        expected |= {"401", "403", "429"}
    if "{" in documented.path:
        expected.add("404")
    problems = [f"documents no {status}" for status in sorted(expected - set(answers))]
    own = {str(status) for status in documented.handler.responses or {}}  # e.g. /readyz's 503: its own report
    for status, answer in answers.items():
        if status[0] in "45" and status not in own:
            assert isinstance(answer, OpenAPIResponse)
            schema = next(iter((answer.content or {}).values())).schema
            if schema is None or schema.to_schema() != {"$ref": "#/components/schemas/Error"}:
                problems.append(f"{status} is not the error shape")
    return problems


@pytest.mark.parametrize("documented", OPERATIONS, ids=lambda d: f"{d.method} {d.path}")
def test_every_operation_documents_its_success_errors_and_security(documented: DocumentedOperation) -> None:
    problems = success_problems(documented) + error_problems(documented)
    if documented.operation.security is None:
        problems.append("declares no security (public routes declare an empty list)")
    assert not problems, f"{documented.name}:\n  " + "\n  ".join(problems)


def test_component_names_are_readable_and_litestar_error_bodies_are_gone() -> None:
    unreadable = [name for name in SCHEMAS if not COMPONENT_NAME.fullmatch(name)]
    assert not unreadable, f"rename these types (one name per type, CamelCase): {unreadable}"
    assert set(DOCUMENT["components"]["securitySchemes"]) == {"apiKey", "session", "csrf"}
    assert "Validation Exception" not in str(DOCUMENT)  # Litestar's own 400 body
