"""A signed-in agent of a fresh commune, and reading the workspace's pages."""

from __future__ import annotations

import re
from dataclasses import dataclass

from httpx import AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession

from plume.models import Agent, Organization
from tests.identity.helpers import fresh_email, invited, sign_in
from tests.identity.provider import MockProvider
from tests.support.factories import Factory


@dataclass(frozen=True)
class SignedIn:
    commune: Organization
    agent: Agent


async def signed_in_agent(
    browser: AsyncClient,
    provider: MockProvider,
    factory: Factory,
    db: AsyncSession,
    *,
    name: str = "Commune de Plumeville",
    role: str = "agent",
    **policy: object,
) -> SignedIn:
    commune = await factory.commune(name, **policy)
    email = fresh_email()
    agent = await invited(db, commune, email, role=role, title="Secrétaire de mairie")
    response = await sign_in(browser, provider, email)
    assert response.status_code == 302, response.text
    assert response.headers["location"] == "/app"
    return SignedIn(commune, agent)


def csrf_field(browser: AsyncClient) -> dict[str, str]:
    return {"csrf_token": browser.cookies.get("plume_csrf") or ""}


def draft_id_of(response: Response) -> str:
    assert response.status_code == 303, response.text
    found = re.fullmatch(r"/app/brouillons/([0-9a-f-]{36})", response.headers["location"])
    assert found, response.headers["location"]
    return found.group(1)


def text_of(html: str) -> str:
    """The page's text with the usual entities read back (Jinja escapes quotes)."""
    return html.replace("&#39;", "'").replace("&#34;", '"').replace("&amp;", "&")
