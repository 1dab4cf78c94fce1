"""Signing in through the provider, as a browser does, and arranging agents."""

from __future__ import annotations

import itertools
import uuid
from typing import Any
from urllib.parse import urlsplit

from httpx import AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession

from plume.models import Agent, AgentRole, AgentStatus, Organization
from tests.identity.provider import MockProvider

PUBLIC_URL = "https://plume.test"
_COUNTER = itertools.count()


def fresh_email() -> str:
    return f"agent.{uuid.uuid4().hex[:10]}@mairie-test.fr"


async def invited(
    db: AsyncSession,
    organization: Organization,
    email: str,
    *,
    role: str = "agent",
    title: str | None = "Secrétaire générale de mairie",
) -> Agent:
    agent = Agent(
        organization_id=organization.id,
        email=email,
        role=AgentRole(role),
        title=title,
        status=AgentStatus.INVITED,
    )
    db.add(agent)
    await db.flush()
    return agent


def person(email: str, **claims: Any) -> dict[str, Any]:
    """A ProConnect user's claims."""
    return {
        "email": email,
        "given_name": "Camille",
        "usual_name": "Martin",
        "acr": "eidas1",
        **claims,
    }


async def start_login(browser: AsyncClient, next_path: str | None = "/app") -> Response:
    params = {"next": next_path} if next_path is not None else {}
    response = await browser.get("/auth/login", params=params)
    assert response.status_code == 302, response.text
    return response


def local(url: str) -> str:
    """Plume's callback address as the browser follows it (path and query)."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == PUBLIC_URL, url
    return f"{parts.path}?{parts.query}"


async def sign_in(
    browser: AsyncClient,
    provider: MockProvider,
    email: str,
    *,
    sub: str | None = None,
    next_path: str | None = "/app",
    **claims: Any,
) -> Response:
    """The whole sign-in: Plume's login, the provider's consent, Plume's callback; the
    callback's answer (a redirection with the cookies, or a refusal)."""
    subject = sub or f"sub-{uuid.uuid4().hex}"
    provider.set_user(subject, person(email, **claims))
    login = await start_login(browser, next_path)
    callback = await provider.consent(login.headers["location"], subject)
    return await browser.get(local(callback))


def csrf(browser: AsyncClient) -> dict[str, str]:
    return {"X-CSRF-Token": browser.cookies.get("plume_csrf") or ""}
