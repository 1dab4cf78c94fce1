"""create_app(): the services wired together, routers, middleware, handlers and lifespan."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import structlog
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from plume.audit import endpoints as audit_endpoints
from plume.audit.refusals import RefusalLog
from plume.calls.settlement import Settlement
from plume.calls.sweeper import Sweeper
from plume.calls.unit import ProviderCalls
from plume.chat import endpoints as chat_endpoints
from plume.chat.service import ChatService
from plume.config import Settings, get_settings
from plume.credentials import endpoints as credentials_endpoints
from plume.dates import Clock, SystemClock
from plume.db import create_engine, create_session_factory, system_sessions
from plume.drafting import endpoints as drafting_endpoints
from plume.drafting import retention
from plume.drafting.finishing import offline_composer
from plume.drafting.gauges import SyntheseBacklog
from plume.drafting.jobs import SyntheseWorker
from plume.drafting.service import DraftingService
from plume.drafting.synthese import PartLimits
from plume.errors import DEFAULT_PUBLIC_URL, set_public_url
from plume.identity import endpoints as identity_endpoints
from plume.identity.oidc import OidcProvider
from plume.metrics import endpoints as metrics_endpoints
from plume.metrics.observer import MetricsObserver
from plume.oauth import endpoints as oauth_endpoints
from plume.organizations import endpoints as organizations_endpoints
from plume.organizations.gauges import OrganizationInfo
from plume.privacy import detection
from plume.quotas import endpoints as quota_endpoints
from plume.quotas.gauges import QuotaGauges
from plume.quotas.guard import QuotaGuard
from plume.routing.config import load_routing
from plume.routing.router import ProviderRouter, offline_provider
from plume.runtime.log import configure_logging
from plume.runtime.memory import keep_for_life, release_freed_memory
from plume.runtime.migrations import head_revision
from plume.runtime.periodic import Periodic
from plume.usage import endpoints as usage_endpoints
from plume.web import health
from plume.web.docs import docs_router, problems_router
from plume.web.errors import install_exception_handlers
from plume.web.middleware import RequestContextMiddleware
from plume.web.openapi import install_openapi
from plume.workspace import admin as workspace_admin
from plume.workspace import admin_reports as workspace_admin_reports
from plume.workspace import endpoints as workspace_endpoints
from plume.workspace import operator as workspace_operator
from plume.workspace import uploads
from plume.workspace.endpoints import SYNTHESE_FORM

logger = structlog.get_logger("plume.app")

# An Idempotency-Key's claim outlives its call's deadline by this much (the settlement).
CLAIM_MARGIN_S = 60
# How long a stopping process waits for its calls' settlements, at most.
SETTLE_AT_STOP_S = 10.0

DESCRIPTION = """
Plume aide les communes à rédiger leurs écrits administratifs (arrêtés, délibérations,
courriers, articles de bulletin, synthèses) avec l'IA générative, sous le contrôle d'un agent.

Authentication: `Authorization: Bearer plm_…` (an API key), or an OAuth2 client's access
token from `POST /oauth/token` (client credentials), acting as a key of the client's role.
Each operation lists the roles it accepts in its security requirement. Errors are
`application/problem+json` (RFC 9457, schema `Problem`; its `type` links to the code's page
under `/problems/`), except on the OpenAI-compatible routes (`/v1/chat/completions`,
`/v1/models`), which answer OpenAI's error object (`OpenAIError`), and on `POST /oauth/token`,
which answers RFC 6749's (`OAuthError`) for the client's mistakes. Every operation lists
the statuses it may answer. Text fields refuse the NUL character (`\\u0000`: 422).
"""
OPENAPI_URL = "/openapi.json"


async def _warm_up(warmed: asyncio.Event, *, served: bool) -> None:
    """Load the pseudonymisation's model (seconds, in a thread), then say the process is
    ready: a restarted process's first pseudonymised request does not wait for it. A model
    that fails to load is logged and left to the first request (which reports it)."""
    started = time.perf_counter()
    try:
        await anyio.to_thread.run_sync(detection.model)
        if served:
            keep_for_life()  # the model's objects too
        logger.info("warmed_up", seconds=round(time.perf_counter() - started, 1))
    except Exception:
        logger.exception("warm_up_failed")
    finally:
        warmed.set()


def _wire(app: FastAPI, session_factory: async_sessionmaker[AsyncSession]) -> None:
    """The services that need the session factory, which may only exist once the app
    starts (`plume serve` builds the engine in the lifespan)."""
    settings: Settings = app.state.settings
    clock: Clock = app.state.clock
    router: ProviderRouter = app.state.provider_router
    app.state.session_factory = session_factory
    settlement = Settlement(
        router,
        QuotaGuard(clock, settings.quota_reservation_ttl_s, settings.quota_job_reservation_ttl_s),
        clock,
        # A single call ends within its deadline: its key is presumed dead a minute after.
        claim_s=math.ceil(settings.provider_deadline_s) + CLAIM_MARGIN_S,
        long_claim_s=settings.quota_job_reservation_ttl_s,
    )
    app.state.provider_calls = ProviderCalls(
        session_factory,
        router,
        settlement,
        observers=[MetricsObserver(router)],
        deadline_s=settings.provider_deadline_s,
        keepalive_s=settings.sse_keepalive_s,
    )
    # The job queue is no tenant's: its sessions begin in the system's scope, and the work
    # on a job enters its tenant's context.
    app.state.synthese_worker = SyntheseWorker(
        system_sessions(session_factory),
        app.state.drafting,
        app.state.provider_calls,
        limits=app.state.synthese_limits,
    )
    app.state.quota_sweeper = Sweeper(session_factory, clock, settings.quota_sweep_interval_s)
    app.state.quota_gauges = QuotaGauges(session_factory, clock, settings.quota_gauge_interval_s)
    # The other gauges read from the database on the same timer.
    app.state.organization_info = OrganizationInfo(
        system_sessions(session_factory), settings.quota_gauge_interval_s
    )
    app.state.synthese_backlog = SyntheseBacklog(
        system_sessions(session_factory), settings.quota_gauge_interval_s
    )
    app.state.refusals = RefusalLog(session_factory, clock)
    app.state.retention = Periodic(
        "retention",
        settings.retention_interval_s,
        partial(retention.purge, session_factory, address_days=settings.audit_address_days),
        first_after_s=settings.retention_first_run_s,
    )


def create_app(
    settings: Settings | None = None,
    *,
    engine: AsyncEngine | None = None,
    session_factory: async_sessionmaker[AsyncSession] | None = None,
    provider_router: ProviderRouter | None = None,
    clock: Clock | None = None,
    served: bool = False,
) -> FastAPI:
    """Build the ASGI application. Tests pass their own engine, session factory, router or
    clock; `plume serve`'s workers are `served` (served_app)."""
    settings = settings or get_settings()
    settings.require_production_settings(serving=True)
    configure_logging(settings.log_level)
    set_public_url(settings.public_url or DEFAULT_PUBLIC_URL)
    # The offline provider answers drafting prompts with documents built from the request.
    if offline_composer not in offline_provider.composers:
        offline_provider.composers.append(offline_composer)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned_engine: AsyncEngine | None = None
        if app.state.session_factory is None:
            owned_engine = create_engine(
                settings.require_database_url(),
                pool_size=settings.db_pool_size,
                pool_timeout=settings.db_pool_timeout_s,
                statement_timeout_s=settings.db_statement_timeout_s,
                idle_in_transaction_timeout_s=settings.db_idle_in_transaction_timeout_s,
            )
            app.state.engine = owned_engine
            _wire(app, create_session_factory(owned_engine))
        worker: SyntheseWorker = app.state.synthese_worker
        sweeper: Sweeper = app.state.quota_sweeper
        gauges: QuotaGauges = app.state.quota_gauges
        timers: list[Periodic] = [
            app.state.organization_info,
            app.state.synthese_backlog,
            app.state.refusals,
            app.state.retention,
        ]
        worker.start()
        sweeper.start()
        gauges.start()
        for timer in timers:
            timer.start()
        warming = (
            asyncio.create_task(_warm_up(app.state.warmed, served=served))
            if settings.warm_up
            else None
        )
        release_freed_memory()  # what importing and wiring freed (≈ 6 MB)
        if served:
            keep_for_life()
        logger.info("started", env=settings.env.value)
        yield
        if warming is not None:
            warming.cancel()
        # Requests still running were cancelled by the server (after its drain), and settle
        # as they end; the job in progress records what it spent. Both need the engine.
        await worker.stop()
        calls: ProviderCalls = app.state.provider_calls
        await calls.drain(SETTLE_AT_STOP_S)
        for timer in timers:  # the refusal log writes what it still holds
            await timer.stop()
        await gauges.stop()  # last of the gauges: it marks this worker's values dead
        await sweeper.stop()
        if owned_engine is not None:
            await owned_engine.dispose()
        logger.info("stopped")

    app = FastAPI(
        title="Plume",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # /docs is Plume's own (same-origin assets); PLUME_DOCS=false removes both.
        openapi_url=OPENAPI_URL if settings.docs else None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    # Set once what the process loads before it is ready is loaded (PLUME_WARM_UP).
    app.state.warmed = asyncio.Event()
    if not settings.warm_up:
        app.state.warmed.set()
    app.state.session_factory = None
    app.state.migration_head = head_revision()
    router = provider_router or ProviderRouter(load_routing(settings.models_file))
    app.state.provider_router = router
    app.state.clock = clock or SystemClock()
    app.state.drafting = DraftingService(router)
    app.state.synthese_limits = PartLimits(
        settings.synthese_concurrency, settings.synthese_organization_concurrency
    )
    app.state.chat = ChatService(router)
    # Agents' sign-in (ProConnect): off without an issuer.
    app.state.oidc = (
        OidcProvider(settings, public_url=settings.public_url or DEFAULT_PUBLIC_URL)
        if settings.sign_in_enabled
        else None
    )
    factory = session_factory or (create_session_factory(engine) if engine is not None else None)
    if factory is not None:
        _wire(app, factory)

    install_exception_handlers(app, body_checks=[drafting_endpoints.oversized_draft_request])
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Idempotency-Key",
                "X-Request-ID",
                "X-CSRF-Token",
            ],
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
    large: dict[str, Any] = {
        drafting_endpoints.router.prefix: settings.synthese_max_body_bytes,
        # The synthèse's form: a pasted text or a file, and the form's few other fields.
        SYNTHESE_FORM: settings.synthese_max_body_bytes + uploads.MAX_BYTES + 64 * 1024,
    }
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        large_body_paths=large,
        upload_paths=frozenset({SYNTHESE_FORM}),
    )

    app.include_router(health.router)
    if settings.metrics_port is None:  # else `plume serve` serves it on that port alone
        app.include_router(metrics_endpoints.router)
    if settings.docs:
        app.include_router(docs_router(OPENAPI_URL))
    app.include_router(problems_router)
    app.include_router(chat_endpoints.router)
    app.include_router(drafting_endpoints.router)
    app.include_router(identity_endpoints.auth_router)
    app.include_router(identity_endpoints.agents_router)
    app.include_router(identity_endpoints.me_router)
    app.include_router(organizations_endpoints.admin_router)
    app.include_router(quota_endpoints.admin_router)
    app.include_router(quota_endpoints.defaults_router)
    app.include_router(audit_endpoints.router)
    app.include_router(usage_endpoints.admin_router)
    app.include_router(usage_endpoints.tenant_router)
    app.include_router(quota_endpoints.tenant_router)
    app.include_router(organizations_endpoints.tenant_router)
    app.include_router(credentials_endpoints.admin_router)
    app.include_router(credentials_endpoints.tenant_router)
    app.include_router(oauth_endpoints.admin_router)
    app.include_router(oauth_endpoints.tenant_router)
    app.include_router(oauth_endpoints.server_router)
    app.include_router(workspace_endpoints.router)
    app.include_router(workspace_admin.router)
    app.include_router(workspace_admin_reports.router)
    app.include_router(workspace_operator.router)
    install_openapi(app)
    return app


def served_app() -> FastAPI:
    """The application of a `plume serve` worker: what it holds at start is kept for life,
    out of the cyclic collector's passes (plume.runtime.memory.keep_for_life)."""
    return create_app(served=True)
