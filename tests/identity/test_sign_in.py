"""Signing in with ProConnect through a real OpenID provider: the authorization request,
the callback's checks, who is admitted, and the session's cookies."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from httpx import AsyncClient
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from plume.models import Agent, AgentSession, AgentStatus
from tests.identity.helpers import (
    PUBLIC_URL,
    fresh_email,
    invited,
    local,
    sign_in,
    start_login,
)
from tests.identity.provider import MockProvider, query_of
from tests.support.factories import Factory


async def test_an_invited_agent_signs_in_and_is_known_by_v1_me(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    commune = await factory.commune("Commune de Sainte-Claire")
    email = fresh_email()
    agent = await invited(db, commune, email.upper(), title="Maire")

    response = await sign_in(browser, provider, email)

    assert response.status_code == 302, response.text
    assert response.headers["location"] == "/app"
    cookies = response.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookies if c.startswith("plume_session="))
    csrf_cookie = next(c for c in cookies if c.startswith("plume_csrf="))
    assert "HttpOnly" in session_cookie
    assert "Secure" in session_cookie
    assert "samesite=lax" in session_cookie.lower()
    assert "HttpOnly" not in csrf_cookie
    assert "Secure" in csrf_cookie

    me = await browser.get("/v1/me")
    assert me.status_code == 200, me.text
    assert me.json() == {
        "kind": "agent",
        "id": str(agent.id),
        "name": "Camille Martin",
        "email": email.upper(),
        "title": "Maire",
        "role": "agent",
        "organization": {
            "id": str(commune.id),
            "name": "Commune de Sainte-Claire",
            "kind": "commune",
        },
        "acr": "eidas1",
    }
    await db.refresh(agent)
    assert agent.status is AgentStatus.ACTIVE
    assert agent.subject is not None
    assert agent.issuer == provider.issuer
    assert agent.last_login_at is not None
    stored = (
        await db.execute(select(AgentSession).where(AgentSession.agent_id == agent.id))
    ).scalar_one()
    assert stored.acr == "eidas1"
    # The token is stored as its HMAC, never as such.
    token = browser.cookies["plume_session"]
    hashes = (
        (
            await db.execute(
                text("SELECT token_hash FROM agent_sessions WHERE agent_id = :a"), {"a": agent.id}
            )
        )
        .scalars()
        .all()
    )
    assert token not in hashes
    assert len(hashes[0]) == 64


async def test_the_authorization_request_uses_pkce_s256_state_and_nonce(
    browser: AsyncClient, provider: MockProvider
) -> None:
    response = await start_login(browser)
    location = response.headers["location"]
    assert location.startswith(provider.issuer + "/oauth2/authorize?")
    query = query_of(location)
    assert query["response_type"] == "code"
    assert query["client_id"] == "plume-test"
    assert query["redirect_uri"] == f"{PUBLIC_URL}/auth/callback"
    assert query["code_challenge_method"] == "S256"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", query["code_challenge"])
    assert len(query["state"]) >= 32
    assert len(query["nonce"]) >= 32
    assert query["state"] != query["nonce"]
    assert set(query["scope"].split()) >= {"openid", "email", "given_name", "usual_name", "siret"}
    # The verifier stays with the browser's signed login cookie, never in the URL.
    assert "code_verifier" not in query
    login_cookie = response.headers["set-cookie"]
    assert login_cookie.startswith("plume_login=")
    assert "HttpOnly" in login_cookie
    assert "Path=/auth" in login_cookie


@pytest.mark.parametrize(
    "next_path",
    [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "",
    ],
)
async def test_next_must_be_a_path_of_this_site(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession, next_path: str
) -> None:
    email = fresh_email()
    await invited(db, await factory.commune(), email)
    response = await sign_in(browser, provider, email, next_path=next_path)
    assert response.status_code == 302, response.text
    assert response.headers["location"] == "/app"


async def test_a_same_site_next_is_followed(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    email = fresh_email()
    await invited(db, await factory.commune(), email)
    response = await sign_in(browser, provider, email, next_path="/app/brouillons?tri=date")
    assert response.headers["location"] == "/app/brouillons?tri=date"


async def test_a_callback_with_another_state_is_refused(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    email = fresh_email()
    await invited(db, await factory.commune(), email)
    provider.set_user("sub-bad-state", {"email": email})
    login = await start_login(browser)
    callback = await provider.consent(login.headers["location"], "sub-bad-state")
    forged = re.sub(r"state=[^&]+", "state=" + "x" * 48, local(callback))
    response = await browser.get(forged)
    assert response.status_code == 400
    assert "text/html" in response.headers["content-type"]
    assert "Connexion interrompue" in response.text
    assert "plume_session" not in browser.cookies
    # Without the login cookie (another browser), the genuine callback is refused too.
    browser.cookies.clear()
    response = await browser.get(local(callback))
    assert response.status_code == 400
    assert "plume_session" not in browser.cookies


async def test_an_unknown_person_gets_a_french_page_and_no_session(
    browser: AsyncClient, provider: MockProvider, db: AsyncSession
) -> None:
    response = await sign_in(browser, provider, fresh_email())
    assert response.status_code == 403
    assert "text/html" in response.headers["content-type"]
    assert "Accès refusé" in response.text
    assert "administrateur de Plume de votre mairie" in response.text
    assert "plume_session" not in browser.cookies
    assert (await browser.get("/v1/me")).status_code == 401


async def test_a_siret_that_is_not_the_organisations_is_refused(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    commune = await factory.commune("Commune de Saint-Siret")
    commune.siret = "21760349400019"
    await db.flush()
    email = fresh_email()
    agent = await invited(db, commune, email)

    refused = await sign_in(browser, provider, email, siret="13002526500013")
    assert refused.status_code == 403
    assert "SIRET" in refused.text
    assert "Commune de Saint-Siret" in refused.text
    await db.refresh(agent)
    assert agent.status is AgentStatus.INVITED
    assert agent.subject is None

    admitted = await sign_in(browser, provider, email, siret="21760349400019")
    assert admitted.status_code == 302, admitted.text


async def test_a_suspended_agent_cannot_sign_in(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    email = fresh_email()
    agent = await invited(db, await factory.commune(), email)
    sub = "sub-suspended-" + email
    assert (await sign_in(browser, provider, email, sub=sub)).status_code == 302
    agent.status = AgentStatus.SUSPENDED
    await db.flush()
    browser.cookies.clear()
    response = await sign_in(browser, provider, email, sub=sub)
    assert response.status_code == 403
    assert "suspendu" in response.text


async def test_the_second_sign_in_finds_the_agent_by_its_subject(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    email = fresh_email()
    agent = await invited(db, await factory.commune(), email)
    sub = "sub-again-" + email
    assert (await sign_in(browser, provider, email, sub=sub)).status_code == 302
    # The provider now knows another address: the subject is what binds.
    browser.cookies.clear()
    response = await sign_in(browser, provider, "autre." + email, sub=sub)
    assert response.status_code == 302
    assert (await browser.get("/v1/me")).json()["id"] == str(agent.id)
    rows = (await db.execute(select(Agent).where(Agent.id == agent.id))).scalars().all()
    assert len(rows) == 1


async def test_userinfo_as_a_signed_jwt_is_accepted(
    browser: AsyncClient,
    provider: MockProvider,
    factory: Factory,
    db: AsyncSession,
    signed_userinfo: None,
) -> None:
    email = fresh_email()
    agent = await invited(db, await factory.commune(), email)
    served = provider.layer.served
    response = await sign_in(browser, provider, email, usual_name="Lefèvre")
    assert response.status_code == 302, response.text
    assert provider.layer.served == served + 1
    await db.refresh(agent)
    assert agent.usual_name == "Lefèvre"


async def test_family_name_stands_for_usual_name_with_other_providers(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    email = fresh_email()
    agent = await invited(db, await factory.commune(), email)
    provider_claims = {"usual_name": None, "family_name": "Durand"}
    response = await sign_in(browser, provider, email, **provider_claims)
    assert response.status_code == 302, response.text
    await db.refresh(agent)
    assert (agent.given_name, agent.usual_name) == ("Camille", "Durand")


def test_the_pkce_challenge_is_the_s256_of_a_verifier() -> None:
    # The formula the provider checks (RFC 7636 §4.2), for the record.
    verifier = "v" * 64
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    assert len(challenge) == 43


async def test_the_operator_sets_an_organisations_siret(
    browser: AsyncClient, factory: Factory
) -> None:
    operator = await factory.operator_key()
    commune, other = await factory.commune(), await factory.commune()
    url = f"/v1/admin/organizations/{commune.id}"
    response = await browser.patch(
        url, headers=operator.headers, json={"siret": "217 603 494 00019"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["siret"] == "21760349400019"
    taken = await browser.patch(
        f"/v1/admin/organizations/{other.id}",
        headers=operator.headers,
        json={"siret": "21760349400019"},
    )
    assert taken.status_code == 409, taken.text
    invalid = await browser.patch(url, headers=operator.headers, json={"siret": "2176"})
    assert invalid.status_code == 422, invalid.text
    cleared = await browser.patch(url, headers=operator.headers, json={"siret": None})
    assert cleared.json()["siret"] is None
