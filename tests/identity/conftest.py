"""The sign-in tests' provider (a real OpenID provider on 127.0.0.1, for the session), the
application configured for it, and a browser-like client (https, cookies kept)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr

from plume.config import Settings
from tests.identity.helpers import PUBLIC_URL
from tests.identity.provider import MockProvider, running_provider
from tests.support.clients import AppFactory
from tests.support.settings import make_settings


@pytest.fixture(scope="session")
def provider() -> Iterator[MockProvider]:
    with running_provider() as running:
        yield running


@pytest.fixture
def signed_userinfo(provider: MockProvider) -> Iterator[None]:
    """The provider answers userinfo as a signed JWT (ProConnect's way) for this test."""
    provider.layer.enabled = True
    try:
        yield
    finally:
        provider.layer.enabled = False


@pytest.fixture(scope="session")
def oidc_settings(database_url: str, provider: MockProvider) -> Settings:
    # The mock gives given_name only with the profile scope (ProConnect has a scope of its own).
    return make_settings(
        database_url,
        public_url=PUBLIC_URL,
        oidc_issuer=provider.issuer,
        oidc_client_id="plume-test",
        oidc_client_secret=SecretStr("plume-test-client-secret"),
        oidc_scopes="openid email profile given_name usual_name siret",
    )


@pytest.fixture
def app(make_app: AppFactory, oidc_settings: Settings) -> FastAPI:
    return make_app(settings=oidc_settings)


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[AsyncClient]:
    """A browser: https (the cookies are Secure outside development), cookies kept, no
    redirect followed."""
    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url=PUBLIC_URL) as http:
        yield http
