"""create_app(): routers, middleware, exception handlers and lifespan."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import psycopg.errors
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException

from plume import health
from plume.audit import endpoints as audit_endpoints
from plume.audit.recorder import AuditHook, record_refusal
from plume.chat import endpoints as chat_endpoints
from plume.config import Settings, get_settings
from plume.credentials import endpoints as credentials_endpoints
from plume.db import create_engine, create_session_factory
from plume.drafting import endpoints as drafting_endpoints
from plume.drafting.jobs import SyntheseWorker
from plume.drafting.service import DraftingService
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
from plume.idempotency import IdempotencyHook, IdempotentReplay
from plume.log import configure_logging
from plume.metrics import endpoints as metrics_endpoints
from plume.metrics.observer import MetricsObserver
from plume.middleware import BodyTooLarge, NulInBody, RequestContextMiddleware
from plume.migrations import head_revision
from plume.organizations import endpoints as organizations_endpoints
from plume.provider_calls import CallHook, ProviderCalls
from plume.quotas import endpoints as quota_endpoints
from plume.quotas.gauges import QuotaGauges
from plume.quotas.guard import QuotaGuard
from plume.quotas.periods import Clock, SystemClock
from plume.quotas.sweeper import Sweeper
from plume.routing.config import load_routing
from plume.routing.router import ProviderRouter
from plume.usage import endpoints as usage_endpoints
from plume.usage.recorder import UsageRecorder
from plume.validation import invalid_request_from

logger = structlog.get_logger("plume.app")

DESCRIPTION = """
Plume aide les communes à rédiger leurs écrits administratifs (arrêtés, délibérations,
courriers, articles de bulletin, synthèses) avec l'IA générative, sous le contrôle d'un agent.

Authentication: `Authorization: Bearer plm_…`. Each operation lists the roles it accepts
in its security requirement. Errors are `application/problem+json` (RFC 9457).
"""


def problem_response(error: PlumeError, request: Request) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    body, media_type = render_error(error, request_id, request.url.path)
    return JSONResponse(
        body, status_code=error.status, headers=error.headers, media_type=media_type
    )


# Raised by the server when it goes away under a connection (57P01-57P03).
_SHUTDOWNS = (
    psycopg.errors.AdminShutdown,
    psycopg.errors.CrashShutdown,
    psycopg.errors.CannotConnectNow,
)


def _is_database_unreachable(error: Exception) -> bool:
    if isinstance(error, sa_exc.TimeoutError):  # pool exhausted or connect timeout
        return True
    if isinstance(error, psycopg.OperationalError):
        # From the driver itself (the hot path's statements): a lost or closed connection
        # is a bare OperationalError or a connection-class (08) error.
        return (
            type(error) is psycopg.OperationalError
            or isinstance(error, _SHUTDOWNS)
            or (error.sqlstate or "").startswith("08")
        )
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        # A failed connection is a bare OperationalError; its subclasses are query errors.
        return type(error.orig) is psycopg.OperationalError
    return False


def _allowed_methods(request: Request) -> str:
    """Every method some operation accepts at this path, from the OpenAPI description
    (Starlette would report only the first matching route's)."""
    table: list[tuple[re.Pattern[str], set[str]]] | None = getattr(
        request.app.state, "allowed_methods", None
    )
    if table is None:
        table = [
            (
                re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(path)) + "$"),
                {method.upper() for method in operations},
            )
            for path, operations in request.app.openapi()["paths"].items()
        ]
        request.app.state.allowed_methods = table
    methods = set().union(*(m for pattern, m in table if pattern.match(request.url.path)))
    return ", ".join(sorted(methods))


async def _oversized_draft(request: Request) -> PayloadTooLarge | None:
    """/v1/drafts admits bodies up to the synthèse limit; any other kind over the general
    limit is a 413, whatever else is wrong with it."""
    limit = request.app.state.settings.max_body_bytes
    if request.url.path != "/v1/drafts" or getattr(request.state, "body_bytes", 0) <= limit:
        return None
    try:
        kind = json.loads(await request.body()).get("kind")
    except (ValueError, AttributeError):
        kind = None
    if kind == "synthese":
        return None
    return PayloadTooLarge(
        "Le corps de la requête dépasse la taille autorisée pour ce type de document "
        f"({limit // 1024} Kio) ; seules les synthèses acceptent des textes plus longs."
    )


# What an authenticated caller may be refused: each refusal is an `access.denied` entry.
_REFUSALS = frozenset({"forbidden", "not_found", "kind_disabled", "hosting_not_allowed"})


def _install_exception_handlers(app: FastAPI) -> None:
    async def on_plume_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, PlumeError)
        if error.code in _REFUSALS:
            await record_refusal(request, error.status, error.code)
        return problem_response(error, request)

    async def on_validation_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        too_large = await _oversized_draft(request)
        if too_large is not None:
            return problem_response(too_large, request)
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
        if _is_database_unreachable(error):
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


def _call_hooks(app: FastAPI, *, enforce_quotas: bool, audit: bool) -> list[CallHook]:
    """What runs around every provider call, in order: the idempotency claim first (a
    replay reserves nothing), then quotas, then the usage record and the audit entry."""
    settings: Settings = app.state.settings
    clock = app.state.clock
    hooks: list[CallHook] = [
        IdempotencyHook(
            clock, settings.quota_reservation_ttl_s, settings.quota_job_reservation_ttl_s
        )
    ]
    if enforce_quotas:
        hooks.append(
            QuotaGuard(
                app.state.provider_router,
                clock,
                settings.quota_reservation_ttl_s,
                settings.quota_job_reservation_ttl_s,
            )
        )
    # The audit hook writes the usage record and its entry in one statement.
    hooks.append(AuditHook() if audit else UsageRecorder())
    return hooks


def _wire_services(app: FastAPI, call_hooks: list[CallHook]) -> None:
    """Services that need the session factory, which may only exist once the app starts."""
    app.state.provider_calls = ProviderCalls(
        app.state.session_factory,
        call_hooks,
        observers=[MetricsObserver(app.state.provider_router)],
    )
    app.state.drafting = DraftingService(app.state.provider_router, app.state.provider_calls)
    app.state.synthese_worker = SyntheseWorker(app.state.session_factory, app.state.drafting)
    app.state.quota_sweeper = Sweeper(
        app.state.session_factory, app.state.clock, app.state.settings.quota_sweep_interval_s
    )
    app.state.quota_gauges = QuotaGauges(
        app.state.session_factory, app.state.clock, app.state.settings.quota_gauge_interval_s
    )


def create_app(
    settings: Settings | None = None,
    *,
    engine: AsyncEngine | None = None,
    session_factory: async_sessionmaker[AsyncSession] | None = None,
    provider_router: ProviderRouter | None = None,
    clock: Clock | None = None,
    enforce_quotas: bool = True,
    audit: bool = True,
) -> FastAPI:
    """Build the ASGI application. Tests pass their own engine, session factory or clock;
    `enforce_quotas=False` and `audit=False` exist only for the benchmarks that measure what
    quotas and the audit trail cost."""
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned_engine: AsyncEngine | None = None
        if app.state.session_factory is None:
            owned_engine = create_engine(
                settings.require_database_url(),
                pool_size=settings.db_pool_size,
                pool_timeout=settings.db_pool_timeout_s,
            )
            app.state.engine = owned_engine
            app.state.session_factory = create_session_factory(owned_engine)
            _wire_services(app, call_hooks)
        worker: SyntheseWorker = app.state.synthese_worker
        sweeper: Sweeper = app.state.quota_sweeper
        gauges: QuotaGauges = app.state.quota_gauges
        worker.start()
        sweeper.start()
        gauges.start()
        logger.info("started", env=settings.env.value)
        yield
        await gauges.stop()
        await sweeper.stop()
        await worker.stop()
        if owned_engine is not None:
            await owned_engine.dispose()
        logger.info("stopped")

    app = FastAPI(
        title="Plume",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory or (
        create_session_factory(engine) if engine is not None else None
    )
    app.state.migration_head = head_revision()
    app.state.provider_router = provider_router or ProviderRouter(
        load_routing(settings.models_file)
    )
    app.state.clock = clock or SystemClock()
    call_hooks = _call_hooks(app, enforce_quotas=enforce_quotas, audit=audit)
    if app.state.session_factory is not None:
        _wire_services(app, call_hooks)

    _install_exception_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=[
                "X-Request-ID",
                "Retry-After",
                "Location",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
                "Idempotency-Replayed",
            ],
        )
    large: dict[str, Any] = {"/v1/drafts": settings.synthese_max_body_bytes}
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        large_body_paths=large,
    )

    app.include_router(health.router)
    app.include_router(metrics_endpoints.router)
    app.include_router(chat_endpoints.router)
    app.include_router(drafting_endpoints.router)
    app.include_router(organizations_endpoints.admin_router)
    app.include_router(quota_endpoints.admin_router)
    app.include_router(audit_endpoints.router)
    app.include_router(usage_endpoints.admin_router)
    app.include_router(usage_endpoints.tenant_router)
    app.include_router(quota_endpoints.tenant_router)
    app.include_router(organizations_endpoints.tenant_router)
    app.include_router(credentials_endpoints.admin_router)
    app.include_router(credentials_endpoints.tenant_router)
    return app
