"""Exception handlers: every error a client may see becomes a problem (RFC 9457), or
OpenAI's error shape on the OpenAI-compatible routes; a lost database is a 503."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence

import psycopg
import psycopg.errors
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import iter_route_contexts
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from plume.audit.refusals import record_refusal
from plume.calls.idempotency import IdempotentReplay
from plume.db import database_unreachable
from plume.errors import (
    Conflict,
    FieldError,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PlumeError,
    ServiceUnavailable,
    render_error,
)
from plume.web.middleware import BodyTooLarge, NulInBody
from plume.web.validation import invalid_request_from

logger = structlog.get_logger("plume.app")

# Checked before a validation error is reported: a route's own reason to refuse the body
# first (an oversized draft is a 413, whatever else is wrong with it).
BodyCheck = Callable[[Request], Awaitable[PlumeError | None]]


def problem_response(error: PlumeError, request: Request) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    # The access log's middleware counts the answer with this code (plume_refusals_total).
    request.state.problem_code = error.code
    body, media_type = render_error(error, request_id, request.url.path)
    return JSONResponse(
        body, status_code=error.status, headers=error.headers, media_type=media_type
    )


def _path_pattern(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)) + "$")


def _allowed_methods(request: Request) -> str:
    """Every method some route accepts at this path (Starlette would report only the first
    matching route's)."""
    table: list[tuple[re.Pattern[str], set[str]]] | None = getattr(
        request.app.state, "allowed_methods", None
    )
    if table is None:
        table = [
            (
                re.compile(
                    "^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(route.path_format)) + "$"
                ),
                set(route.methods) - {"HEAD"},
            )
            for route in iter_route_contexts(request.app.routes)
            if route.methods and route.path_format
        ]
        request.app.state.allowed_methods = table
    methods = set().union(*(m for pattern, m in table if pattern.match(request.url.path)))
    return ", ".join(sorted(methods))


# What an authenticated caller may be refused: each refusal is an `access.denied` entry.
_REFUSALS = frozenset({"forbidden", "not_found", "kind_disabled", "hosting_not_allowed"})


def install_exception_handlers(app: FastAPI, body_checks: Sequence[BodyCheck] = ()) -> None:
    async def on_plume_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, PlumeError)
        if error.code in _REFUSALS:
            await record_refusal(request, error.status, error.code)
        return problem_response(error, request)

    async def on_validation_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        for check in body_checks:
            refused = await check(request)
            if refused is not None:
                return problem_response(refused, request)
        return problem_response(invalid_request_from(error.errors()), request)

    async def on_http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        mapped: PlumeError
        if isinstance(error.__cause__, BodyTooLarge):
            mapped = PayloadTooLarge()
        elif isinstance(error.__cause__, NulInBody):
            nul = "Le texte envoyé contient un caractère nul (\\u0000), qui n'est pas admis."
            mapped = InvalidRequest(nul, errors=[FieldError(field="body", message=nul)])
        elif error.status_code == 404:
            mapped = NotFound("Aucune ressource à cette adresse.")
        elif error.status_code == 405:
            mapped = MethodNotAllowed(headers={"Allow": _allowed_methods(request)})
        elif error.status_code == 400:
            mapped = InvalidRequest("Le corps de la requête n'a pas pu être lu.")
        else:
            mapped = InternalError()
        return problem_response(mapped, request)

    async def on_database_error(request: Request, error: Exception) -> JSONResponse:
        if database_unreachable(error):
            logger.warning("database_unavailable", error_type=type(error).__name__)
            return problem_response(ServiceUnavailable(), request)
        if isinstance(error, sa_exc.DataError):
            logger.warning("database_refused_value", error_type=type(error.orig).__name__)
            return problem_response(
                InvalidRequest("Une valeur envoyée ne peut pas être enregistrée telle quelle."),
                request,
            )
        if isinstance(error, sa_exc.IntegrityError) and isinstance(
            error.orig, psycopg.errors.UniqueViolation
        ):
            return problem_response(
                Conflict("Cette ressource existe déjà (demande simultanée ?)."), request
            )
        # Only the type: the message may quote the statement's parameters.
        logger.error("database_error", error_type=type(error).__name__)
        return problem_response(InternalError(), request)

    async def on_replay(request: Request, replay: Exception) -> Response:
        assert isinstance(replay, IdempotentReplay)
        stored = replay.response
        return Response(
            stored.body,
            status_code=stored.status_code,
            media_type=stored.content_type,
            headers={**stored.headers, "Idempotency-Replayed": "true"},
        )

    app.add_exception_handler(PlumeError, on_plume_error)
    app.add_exception_handler(IdempotentReplay, on_replay)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(sa_exc.SQLAlchemyError, on_database_error)
    app.add_exception_handler(psycopg.OperationalError, on_database_error)
