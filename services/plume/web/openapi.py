"""The OpenAPI description, telling the truth about errors and content types.

FastAPI documents a route's success and its validation error (in its own shape). Plume
answers errors as problem details (RFC 9457) everywhere but on the OpenAI-compatible routes,
so the description is post-processed once, route by route: the statuses a route may answer
are derived from what it depends on (authentication, the request's transaction, a provider
call, path parameters, a body), plus what the route declares it raises itself
(`responses=raises(Conflict)`); each is documented with the shared `Problem` schema under
`application/problem+json`, or OpenAI's error object under `application/json`. A route's
other content types (a stream, a file) are declared by the route (`event_stream`,
`download`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from plume.calls.dependencies import call_opener
from plume.credentials.auth import authenticate, authenticate_for_provider_call
from plume.errors import (
    OPENAI_COMPATIBLE_PATHS,
    PROBLEM_JSON,
    ContentRefused,
    Forbidden,
    HostingNotAllowed,
    IdempotencyInProgress,
    IdempotencyMismatch,
    InternalError,
    InvalidRequest,
    KindDisabled,
    NotFound,
    OrganizationSuspended,
    PayloadTooLarge,
    PersonalDataRefused,
    PlumeError,
    ProviderUnavailable,
    QuotaExceeded,
    RateLimited,
    ServiceUnavailable,
    Unauthenticated,
    problem_classes,
    problem_type,
)
from plume.models import ApiKeyRole
from plume.web.transaction import get_db_session

Responses = dict[int | str, dict[str, Any]]

# Where a route's own errors wait for the post-processing (an extension it removes).
_RAISES = "x-plume-raises"


def raises(*errors: type[PlumeError]) -> Responses:
    """`responses=` for the errors a route raises itself (beyond those of its
    dependencies): documented as problems, or as OpenAI errors on the OpenAI routes."""
    found: Responses = {}
    for error in errors:
        entry = found.setdefault(error.status, {"description": "", _RAISES: []})
        entry[_RAISES].append(error.code)
    return found


def event_stream(description: str, event: dict[str, Any]) -> Responses:
    """`responses=` for a route that answers Server-Sent Events with status 200; `event`
    is the schema of one event, `{event, data}` (see `named_events`)."""
    return {200: {"description": description, "content": {"text/event-stream": {"schema": event}}}}


def json_event(payload: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """One kind of event: its `data` is JSON of schema `payload`; named `name` (`event:`),
    else a plain `message`."""
    return {
        "type": "object",
        "required": ["data"] if name is None else ["event", "data"],
        "properties": {
            "event": {"const": name or "message"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": payload,
            },
        },
    }


def named_events(**payloads: dict[str, Any]) -> dict[str, Any]:
    """Events named by kind (`event: delta`…), each with its JSON payload's schema."""
    return {"oneOf": [json_event(payload, name) for name, payload in payloads.items()]}


def schema_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def download(description: str, *media_types: str, status: int = 200) -> Responses:
    """`responses=` for a file (or a text) answered as it is, in one of `media_types`."""
    return {
        status: {
            "description": description,
            "content": {
                media_type: {"schema": {"type": "string", "format": "binary"}}
                for media_type in media_types
            },
        }
    }


def merge(*parts: Responses) -> Responses:
    """Several `responses=` parts for one route."""
    merged: Responses = {}
    for part in parts:
        for status, entry in part.items():
            into = merged.setdefault(status, {})
            for key, value in entry.items():
                if key == _RAISES:
                    into.setdefault(_RAISES, []).extend(value)
                elif key == "content":
                    into.setdefault("content", {}).update(value)
                elif key == "description" and into.get("description"):
                    into["description"] = "; ".join(p for p in (into["description"], value) if p)
                else:
                    into[key] = value
    return merged


# --- the shared schemas --------------------------------------------------------------------


def _schemas() -> dict[str, Any]:
    codes = sorted(problem_classes())
    return {
        "Problem": {
            "title": "Problem",
            "type": "object",
            "description": (
                "An error, as RFC 9457 problem details. Act on `code`; show `detail` (French) "
                "to a person; quote `request_id` (also the X-Request-ID header) to the "
                "operator. `type` is the code's documentation page."
            ),
            "required": ["type", "title", "status", "detail", "code", "request_id"],
            "properties": {
                "type": {"type": "string", "format": "uri", "example": problem_type("not_found")},
                "title": {"type": "string", "description": "The code's title (French)"},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "detail": {"type": "string", "description": "What happened (French)"},
                "code": {"type": "string", "enum": codes},
                "request_id": {"type": "string"},
                "errors": {
                    "type": "array",
                    "description": "On validation errors: one item per offending field",
                    "items": {"$ref": "#/components/schemas/ProblemFieldError"},
                },
            },
        },
        "ProblemFieldError": {
            "title": "ProblemFieldError",
            "type": "object",
            "required": ["field", "message"],
            "properties": {
                "field": {
                    "type": "string",
                    "description": "Its path in the body (`recipient.name`, `[0].limit`), a "
                    "query parameter, a header, or `body`",
                },
                "message": {"type": "string", "description": "French"},
            },
        },
        "OpenAIError": {
            "title": "OpenAIError",
            "type": "object",
            "description": "An error on the OpenAI-compatible routes, in OpenAI's shape.",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["message", "type", "code", "param"],
                    "properties": {
                        "message": {"type": "string", "description": "French"},
                        "type": {"type": "string", "example": "rate_limit_error"},
                        "code": {"type": "string", "enum": codes},
                        "param": {"type": ["string", "null"]},
                    },
                }
            },
        },
    }


_HEADERS: dict[str, Any] = {
    "X-Request-ID": {
        "description": "The request's id, echoed when the client sent a sane one",
        "required": True,
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "WWW-Authenticate": {
        "description": "The Bearer challenge",
        "required": True,
        "schema": {"type": "string"},
    },
}


def _header(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/headers/{name}"}


# Headers every answer of a status carries (`ServiceUnavailable`, `QuotaExceeded` and
# `Unauthenticated` always set them).
_STATUS_HEADERS = {401: ["WWW-Authenticate"], 429: ["Retry-After"], 503: ["Retry-After"]}


# --- what a route may answer, from its dependencies ------------------------------------------


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def _security_scopes(dependant: Dependant) -> list[str]:
    return list(dependant.own_oauth_scopes or []) + list(dependant.parent_oauth_scopes or [])


def derived_errors(route: APIRoute | RouteContext) -> dict[int, list[str]]:
    """The problem codes a route may answer, by status, from what it depends on."""
    codes: dict[int, list[str]] = {}

    def add(*errors: type[PlumeError]) -> None:
        for error in errors:
            listed = codes.setdefault(error.status, [])
            if error.code not in listed:
                listed.append(error.code)

    calls: set[Callable[..., Any]] = set()
    authenticated = False
    narrowed = False
    for dependant in _dependants(route.dependant):
        if dependant.call is None:
            continue
        calls.add(dependant.call)
        if dependant.call in (authenticate, authenticate_for_provider_call):
            authenticated = True
            scopes = set(_security_scopes(dependant))
            narrowed = narrowed or 0 < len(scopes) < len(ApiKeyRole)
    every = list(_dependants(route.dependant))
    has_path = any(d.path_params for d in every)
    has_body = any(d.body_params for d in every)
    has_input = has_path or has_body or any(d.query_params or d.header_params for d in every)
    if authenticated:
        add(Unauthenticated, OrganizationSuspended)
        if narrowed:
            add(Forbidden)
    if has_path:
        add(NotFound)
    if call_opener in calls:
        # A provider call: policy, model group, idempotency, quotas, the provider itself.
        add(KindDisabled, HostingNotAllowed, NotFound, IdempotencyInProgress)
        add(InvalidRequest, IdempotencyMismatch, ContentRefused, PersonalDataRefused)
        add(QuotaExceeded, RateLimited, ProviderUnavailable)
    if has_body:
        add(PayloadTooLarge)
    if has_input:
        add(InvalidRequest)
    if authenticated or get_db_session in calls:
        add(ServiceUnavailable)
    add(InternalError)
    return codes


def _describe(codes: list[str]) -> str:
    classes = problem_classes()
    return "; ".join(f"`{code}`: {classes[code].title}" for code in codes if code in classes)


def _error_response(status: int, codes: list[str], openai: bool) -> dict[str, Any]:
    schema = "OpenAIError" if openai else "Problem"
    media_type = "application/json" if openai else PROBLEM_JSON
    headers = {name: _header(name) for name in ["X-Request-ID", *_STATUS_HEADERS.get(status, [])]}
    return {
        "description": _describe(codes),
        "headers": headers,
        "content": {media_type: {"schema": schema_ref(schema)}},
    }


def document_errors(schema: dict[str, Any], routes: list[Any]) -> dict[str, Any]:
    """Rewrite each operation's error responses (see the module's docstring); drop FastAPI's
    validation error schemas."""
    for route in iter_route_contexts(routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        operations = schema["paths"].get(route.path_format, {})
        openai = route.path_format in OPENAI_COMPATIBLE_PATHS
        derived = derived_errors(route)
        for method in route.methods or ():
            operation = operations.get(method.lower())
            if operation is None:
                continue
            responses: dict[str, Any] = operation["responses"]
            codes = {status: list(listed) for status, listed in derived.items()}
            for key, response in list(responses.items()):
                declared = response.pop(_RAISES, None)
                if declared is not None:
                    listed = codes.setdefault(int(key), [])
                    listed.extend(c for c in declared if c not in listed)
                    del responses[key]
                elif key == "422" and "HTTPValidationError" in str(response):
                    del responses[key]
            for status, listed in sorted(codes.items()):
                if str(status) in responses:  # the route documents it (e.g. /readyz's 503)
                    continue
                responses[str(status)] = _error_response(status, listed, openai)
            for response in responses.values():
                response.setdefault("headers", {}).setdefault(
                    "X-Request-ID", _header("X-Request-ID")
                )
            operation["responses"] = dict(sorted(responses.items()))
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas.update(_schemas())
    components["schemas"] = dict(sorted(schemas.items()))
    components["headers"] = _HEADERS
    return schema


def install_openapi(app: FastAPI) -> None:
    """Post-process the generated description once, when it is first asked for."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(generate(), app.routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
