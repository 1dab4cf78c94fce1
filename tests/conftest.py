"""Test fixtures: a real PostgreSQL built by the real migrations, one rolled-back
transaction per test, and one-line factories for organisations and keys."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ["PLUME_ENV"] = "test"

import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from plume.app import create_app
from plume.config import Environment, Settings
from plume.db import create_engine
from plume.runtime.migrations import upgrade
from tests.factories import Factory

TEST_SECRET = "test-secret-" + "k3y" * 10
LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def _server_admin_url(tmp_root: Path) -> str:
    """PLUME_TEST_DATABASE_URL, else the local server if it answers, else an embedded one."""
    configured = os.environ.get("PLUME_TEST_DATABASE_URL")
    if configured:
        return configured.replace("postgresql+psycopg://", "postgresql://")
    try:
        psycopg.connect(LOCAL_SERVER, connect_timeout=2).close()
        return LOCAL_SERVER
    except psycopg.OperationalError:
        from plume.runtime.embedded import start_embedded_postgres

        url = start_embedded_postgres(tmp_root / "pgdata", database="postgres")
        return url.replace("postgresql+psycopg://", "postgresql://")


def _with_database(admin_url: str, name: str) -> str:
    base, _, query = admin_url.partition("?")
    base = base.rsplit("/", 1)[0] + "/" + name
    url = base + ("?" + query if query else "")
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


class DatabaseServer:
    """Creates throw-away databases on the test server and drops them at the end."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.created: list[str] = []

    def create(self, *, migrate: bool = True) -> str:
        name = f"plume_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        url = _with_database(self.admin_url, name)
        if migrate:
            upgrade(url)
        return url

    def drop_all(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            for name in self.created:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_server() -> Iterator[DatabaseServer]:
    with tempfile.TemporaryDirectory(prefix="plume-test-") as tmp:
        server = DatabaseServer(_server_admin_url(Path(tmp)))
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


def make_settings(database_url: str | None = None, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": Environment.TEST,
        "database_url": database_url,
        "secret_key": SecretStr(TEST_SECRET),
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings.model_validate(values)


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[object]:
    engine = create_engine(database_url, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: object) -> AsyncIterator[AsyncConnection]:
    """One connection per test, inside a transaction rolled back at the end."""
    async with engine.connect() as connection:  # type: ignore[attr-defined]
        transaction = await connection.begin()
        try:
            yield connection
        finally:
            await transaction.rollback()


class SavepointSession(AsyncSession):
    """A session inside the test's transaction: its commits release savepoints.

    On close it undoes what the end of a real transaction would have undone (the role and
    scope set with SET LOCAL), so the test's own queries run with the connection's role.
    """

    async def close(self) -> None:
        await super().close()
        bind = self.bind
        if isinstance(bind, AsyncConnection) and not bind.closed:
            await reset_tenant_context(bind)


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


async def reset_tenant_context(connection: AsyncConnection) -> None:
    """What the end of a real request transaction does to SET LOCAL values."""
    await connection.execute(text("RESET ROLE"))
    await connection.execute(
        text(
            "SELECT set_config('plume.all_organizations', '', true),"
            " set_config('plume.organizations', '', true),"
            " set_config('plume.ancestors', '', true)"
        )
    )


# LiteLLM lists every Router's cooldown and usage callbacks in module globals, and silently
# stops adding them past LITELLM_MAX_CALLBACKS (100): after a hundred test routers, a new
# router would have no cooldowns. Production builds one router per hosting policy; tests
# build hundreds, so each test gives back the callbacks its routers added.
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
    for name, callbacks in saved.items():
        getattr(litellm, name)[:] = callbacks


@pytest.fixture
def app(
    settings: Settings,
    connection: AsyncConnection,
    session_factory: async_sessionmaker[AsyncSession],
) -> FastAPI:
    return create_app(settings, session_factory=session_factory)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://plume.test") as http:
        yield http


@pytest.fixture
async def factory(db: AsyncSession, connection: AsyncConnection) -> Factory:
    return Factory(db, TEST_SECRET)


def random_secret() -> str:
    return secrets.token_urlsafe(40)
