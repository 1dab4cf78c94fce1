"""Applications for tests and clients for them.

`AppFactory` (the `make_app` fixture) builds the application on the test's transaction, with
`create_app`'s own keyword arguments as overrides (settings, provider_router, clock…);
`client_for` is an HTTP client for an application, in-process; `running` also runs the
application's lifespan, as uvicorn would (it then builds its own engine, so what it writes
is really committed).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from plume.app import create_app
from plume.config import Settings
from plume.routing.router import ProviderRouter

BASE_URL = "http://plume.test"


def bearer(key: str) -> dict[str, str]:
    """The Authorization header of a request made with the API key `key`."""
    return {"Authorization": f"Bearer {key}"}


@dataclass(frozen=True)
class AppFactory:
    """Builds applications whose requests run in the test's transaction.

    Without a routing file and without `provider_router`, they share `default_router`, the
    router `create_app` would build from the settings (built once per test process).
    """

    settings: Settings
    session_factory: async_sessionmaker[AsyncSession]
    default_router: ProviderRouter

    def __call__(self, **overrides: Any) -> FastAPI:
        settings: Settings = overrides.pop("settings", self.settings)
        if "provider_router" not in overrides and settings.models_file is None:
            overrides["provider_router"] = self.default_router
        return create_app(settings, session_factory=self.session_factory, **overrides)


@asynccontextmanager
async def client_for(app: FastAPI, **options: Any) -> AsyncIterator[AsyncClient]:
    """An HTTP client for `app`, in-process; an exception in the app is a 500, as served."""
    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url=BASE_URL, **options) as http:
        yield http


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[AsyncClient]:
    """A client for an app whose lifespan runs, as under uvicorn: it starts its background
    tasks and, without a session factory, builds its own engine."""
    async with app.router.lifespan_context(app), client_for(app) as http:
        yield http
