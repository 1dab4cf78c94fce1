"""The drafting tests' applications: `client` (from tests.support.fixtures) has no routing
file, so the offline provider answers; `fake_client` is routed by a routing file pointing at
`ActProvider` (tests/drafting/helpers.py). `agent` belongs to a commune with a distinctive
name, which the drafts must carry."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from plume.routing.config import parse_routing
from plume.routing.router import ProviderRouter
from tests.drafting.helpers import COMMUNE, ActProvider, fake_routing
from tests.support.clients import AppFactory, client_for
from tests.support.servers import serve_in_thread


@pytest.fixture(scope="session")
def fake() -> Iterator[ActProvider]:
    """The drafting tests' fake provider, for the session (tests compare its records with
    what they were before the test)."""
    provider = ActProvider()
    with serve_in_thread(provider.app, provider.port):
        yield provider


@pytest.fixture
def fake_app(make_app: AppFactory, fake: ActProvider) -> FastAPI:
    router = ProviderRouter(parse_routing(fake_routing(fake), "test.yaml"), environ={})
    return make_app(provider_router=router)


@pytest.fixture
async def fake_client(fake_app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with client_for(fake_app, timeout=60) as http:
        yield http


@pytest.fixture
def agent_commune_name() -> str:
    """`agent` is of a commune with a distinctive name, under the operator's defaults."""
    return COMMUNE
