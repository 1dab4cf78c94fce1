"""The tests' pytest fixtures (loaded by tests/conftest.py): a real PostgreSQL built by the
real migrations, one rolled-back transaction per test, applications and clients on that
transaction, the factories, and a fake provider shared by the tests of a process."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from plume.config import Settings
from plume.db import create_engine
from plume.routing.config import load_routing
from plume.routing.router import ProviderRouter
from tests.support.clients import AppFactory, client_for
from tests.support.clock import FRIDAY_AFTERNOON, FakeClock
from tests.support.database import DatabaseServer, SavepointSession, server_admin_url
from tests.support.factories import Factory, Key
from tests.support.providers import RecordingProvider, running_recording_provider
from tests.support.settings import TEST_SECRET, make_settings

# --------------------------------------------------------------------------------------
# The database: one server, throw-away databases, a rolled-back transaction per test
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def database_server() -> Iterator[DatabaseServer]:
    with tempfile.TemporaryDirectory(prefix="plume-test-") as tmp:
        server = DatabaseServer(server_admin_url(Path(tmp)))
        try:
            yield server
        finally:
            server.drop_all()


@pytest.fixture(scope="session")
def database_url(database_server: DatabaseServer) -> str:
    """The suite's main database, built by `alembic upgrade head`."""
    return database_server.create()


@pytest.fixture(scope="session")
def committed_database_url(database_server: DatabaseServer) -> str:
    """A second database for tests that need real commits (processes, concurrency).

    Its tests create their own organisations with fresh identifiers, so they do not
    depend on each other's data.
    """
    return database_server.create()


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One connection per test, inside a transaction rolled back at the end."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        try:
            yield connection
        finally:
            await transaction.rollback()


@pytest.fixture
def session_factory(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(
        bind=connection,
        class_=SavepointSession,
        expire_on_commit=False,
        autoflush=False,
        join_transaction_mode="create_savepoint",
    )


@pytest.fixture
async def db(session_factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session with the connection's own (superuser) role, for arranging and asserting."""
    async with session_factory() as session:
        yield session


@pytest.fixture
async def factory(db: AsyncSession, connection: AsyncConnection) -> Factory:
    return Factory(db, TEST_SECRET)


@pytest.fixture
def agent_commune_name() -> str:
    """The name of `agent`'s commune (a package whose tests read it may choose another)."""
    return "Commune de test"


@pytest.fixture
async def agent(factory: Factory, agent_commune_name: str) -> Key:
    """An agent of a commune under the operator's defaults (hosting fr and eu)."""
    return await factory.key(await factory.commune(agent_commune_name), "agent")


# --------------------------------------------------------------------------------------
# Routing: the built-in router, once per process, and LiteLLM's global callback lists
# --------------------------------------------------------------------------------------


# Routers that live for the whole session; see _litellm_callbacks.
_SHARED_ROUTERS: list[ProviderRouter] = []


@pytest.fixture(scope="session")
def default_router() -> ProviderRouter:
    """The router `create_app` builds from the tests' settings (no routing file: the
    built-in configuration), built once per test process and shared by the applications
    that do not bring their own."""
    router = ProviderRouter(load_routing(None))
    _SHARED_ROUTERS.append(router)
    return router


# LiteLLM lists every Router's cooldown and usage callbacks in module globals, and silently
# stops adding them past LITELLM_MAX_CALLBACKS: after that many test routers, a new router
# would have no cooldowns. Production builds one router per hosting policy; tests build
# hundreds, so each test gives back the callbacks its routers added, except those of the
# shared default router (whose LiteLLM Routers are built on first use, by whichever test
# comes first with a given hosting policy, and kept for the rest of the session).
_LITELLM_CALLBACK_LISTS = (
    "callbacks",
    "success_callback",
    "failure_callback",
    "_async_success_callback",
    "_async_failure_callback",
)


@pytest.fixture(autouse=True)
def _litellm_callbacks() -> Iterator[None]:
    import litellm

    saved = {name: list(getattr(litellm, name)) for name in _LITELLM_CALLBACK_LISTS}
    yield
    # A ProviderRouter builds one LiteLLM Router per hosting policy, on first use.
    shared = [id(router) for owner in _SHARED_ROUTERS for router in owner._routers.values()]
    for name, callbacks in saved.items():
        current: list[Any] = getattr(litellm, name)
        kept = [
            callback
            for callback in current
            if callback not in callbacks and id(getattr(callback, "__self__", None)) in shared
        ]
        current[:] = [*callbacks, *kept]


# --------------------------------------------------------------------------------------
# Applications and clients on the test's transaction
# --------------------------------------------------------------------------------------


@pytest.fixture
def make_app(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    default_router: ProviderRouter,
) -> AppFactory:
    """`make_app(**overrides)`: an application on the test's transaction; the overrides are
    create_app's keyword arguments (settings, provider_router, clock…)."""
    return AppFactory(settings, session_factory, default_router)


@pytest.fixture
def clock() -> FakeClock:
    """A clock for applications whose tests move time by hand (pass it in `app_overrides`)."""
    return FakeClock(FRIDAY_AFTERNOON)


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    """create_app's arguments for the `app` fixture: a module whose tests need another
    clock or router overrides this fixture."""
    return {}


@pytest.fixture
def app(
    make_app: AppFactory, connection: AsyncConnection, app_overrides: dict[str, Any]
) -> FastAPI:
    return make_app(**app_overrides)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with client_for(app) as http:
        yield http


# --------------------------------------------------------------------------------------
# The fake provider
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fake() -> Iterator[RecordingProvider]:
    """The recording fake provider, serving for the whole session: tests compare its
    counters and records with what they were before the test, never with zero."""
    with running_recording_provider() as provider:
        yield provider
