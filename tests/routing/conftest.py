"""`plume`: clients for applications routed by the routers a test builds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack

import pytest
from httpx import AsyncClient

from plume.routing.router import ProviderRouter
from tests.calls.pacing import PacedProvider, running_paced_provider
from tests.routing.helpers import PlumeFor
from tests.support.clients import AppFactory, client_for


@pytest.fixture
async def plume(make_app: AppFactory) -> AsyncIterator[PlumeFor]:
    """`await plume(router)`: a client for the application routed by `router`."""
    async with AsyncExitStack() as stack:

        async def build(router: ProviderRouter) -> AsyncClient:
            return await stack.enter_async_context(client_for(make_app(provider_router=router)))

        yield build


@pytest.fixture(scope="session")
def paced() -> Iterator[PacedProvider]:
    """A provider whose answers come late when a message asks for a LONG one."""
    with running_paced_provider() as provider:
        yield provider
