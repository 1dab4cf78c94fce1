"""A signed-in agent's session: the cookie on /v1 routes, CSRF on unsafe methods, Bearer
ignoring cookies, expiry, suspension on the next request, listing and revoking, logout."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from httpx import AsyncClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from plume.drafting.retention import purge
from plume.models import Agent, AgentSession, OrganizationStatus
from tests.identity.helpers import csrf, fresh_email, invited, sign_in
from tests.identity.provider import MockProvider, query_of
from tests.support.factories import Factory
from tests.support.problems import assert_problem


async def _signed_in(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession, **kw: object
) -> Agent:
    email = fresh_email()
    agent = await invited(db, kw.pop("organization", None) or await factory.commune(), email, **kw)  # type: ignore[arg-type]
    response = await sign_in(browser, provider, email, sub="sub-" + email)
    assert response.status_code == 302, response.text
    return agent


async def _again(browser: AsyncClient, provider: MockProvider, agent: Agent) -> None:
    """The same person signs in again (another browser, or later)."""
    response = await sign_in(browser, provider, agent.email, sub="sub-" + agent.email)
    assert response.status_code == 302, response.text


async def test_unsafe_methods_need_the_csrf_token(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    await _signed_in(browser, provider, factory, db, role="tenant_admin")
    body = {"email": fresh_email(), "role": "agent", "title": "Adjoint"}

    missing = await browser.post("/v1/organization/agents", json=body)
    assert_problem(missing, 403, "forbidden")
    assert "CSRF" in missing.json()["detail"]
    wrong = await browser.post(
        "/v1/organization/agents", json=body, headers={"X-CSRF-Token": "0" * 64}
    )
    assert_problem(wrong, 403, "forbidden")
    right = await browser.post("/v1/organization/agents", json=body, headers=csrf(browser))
    assert right.status_code == 201, right.text
    # Reading needs none.
    assert (await browser.get("/v1/organization/agents")).status_code == 200


async def test_a_bearer_request_ignores_the_cookies(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    commune = await factory.commune()
    await _signed_in(browser, provider, factory, db, organization=commune)
    key = await factory.key(await factory.commune(), "agent")
    me = await browser.get("/v1/me", headers=key.headers)
    assert me.json()["kind"] == "api_key"
    assert me.json()["id"] == key.id
    # No CSRF token needed with a key, whatever the cookies.
    response = await browser.post(
        "/v1/drafts", headers=key.headers, json={"kind": "courrier", "recipient": "x"}
    )
    assert response.status_code != 403, response.text
    # A wrong key is not rescued by the session cookie.
    bad = await browser.get("/v1/me", headers={"Authorization": "Bearer plm_" + "x" * 43})
    assert_problem(bad, 401, "unauthenticated")


async def test_a_suspended_agent_is_refused_on_the_next_request(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    agent = await _signed_in(browser, provider, factory, db)
    assert (await browser.get("/v1/me")).status_code == 200
    admin = await factory.key(
        await factory.organizations.get(agent.organization_id), "tenant_admin"
    )
    response = await browser.patch(
        f"/v1/organization/agents/{agent.id}", headers=admin.headers, json={"status": "suspended"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "suspended"
    refused = await browser.get("/v1/me")
    # Its sessions were revoked at once.
    assert_problem(refused, 401, "unauthenticated")


async def test_a_suspended_organisation_is_refused_on_the_next_request(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    epci = await factory.epci()
    commune = await factory.commune(parent=epci)
    await _signed_in(browser, provider, factory, db, organization=commune)
    assert (await browser.get("/v1/me")).status_code == 200
    epci.status = OrganizationStatus.SUSPENDED
    await db.flush()
    assert_problem(await browser.get("/v1/me"), 403, "organization_suspended")


async def test_a_session_expires(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    agent = await _signed_in(browser, provider, factory, db)
    assert (await browser.get("/v1/me")).status_code == 200
    # Idle for longer than PLUME_SESSION_IDLE_S (8 h by default).
    await db.execute(
        update(AgentSession)
        .where(AgentSession.agent_id == agent.id)
        .values(last_seen_at=datetime.now(UTC) - timedelta(hours=9))
    )
    refused = await browser.get("/v1/me")
    assert_problem(refused, 401, "unauthenticated")
    assert "expiré" in refused.json()["detail"]

    # Past the absolute expiry, however recent the last request.
    browser.cookies.clear()
    await _again(browser, provider, agent)
    await db.execute(
        update(AgentSession)
        .where(AgentSession.agent_id == agent.id, AgentSession.revoked_at.is_(None))
        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    assert_problem(await browser.get("/v1/me"), 401, "unauthenticated")


async def test_sessions_are_listed_and_revoked(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    agent = await _signed_in(browser, provider, factory, db)
    first = browser.cookies["plume_session"]
    browser.cookies.clear()
    await _again(browser, provider, agent)
    listed = await browser.get("/v1/me/sessions")
    assert listed.status_code == 200, listed.text
    sessions = listed.json()
    assert len(sessions) == 2
    assert sorted(s["current"] for s in sessions) == [False, True]
    assert all(s["acr"] == "eidas1" for s in sessions)
    other = next(s["id"] for s in sessions if not s["current"])
    current = next(s["id"] for s in sessions if s["current"])

    response = await browser.delete(f"/v1/me/sessions/{other}", headers=csrf(browser))
    assert response.status_code == 204, response.text
    assert [s["id"] for s in (await browser.get("/v1/me/sessions")).json()] == [current]
    # The revoked session's cookie no longer works; the current one does.
    revoked = await browser.get("/v1/me", headers={"Cookie": f"plume_session={first}"})
    assert_problem(revoked, 401, "unauthenticated")
    assert (await browser.get("/v1/me")).status_code == 200
    # Another's session, or an unknown one: 404.
    missing = await browser.delete(f"/v1/me/sessions/{agent.id}", headers=csrf(browser))
    assert_problem(missing, 404, "not_found")


async def test_a_key_has_no_sessions(client: AsyncClient, factory: Factory) -> None:
    key = await factory.key(await factory.commune(), "agent")
    assert_problem(await client.get("/v1/me/sessions", headers=key.headers), 403, "forbidden")


async def test_logout_revokes_the_session_and_goes_to_the_provider(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    await _signed_in(browser, provider, factory, db)
    token = browser.cookies["plume_session"]
    headers = csrf(browser)

    refused = await browser.post("/auth/logout")
    assert refused.status_code == 403
    response = await browser.post("/auth/logout", headers=headers)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(provider.issuer + "/oauth2/end_session?")
    query = query_of(location)
    assert query["post_logout_redirect_uri"] == "https://plume.test/auth/logged-out"
    assert query["id_token_hint"].count(".") == 2
    assert "plume_session" not in browser.cookies
    # Server-side: the old cookie is worth nothing now.
    browser.cookies.set("plume_session", token, domain="plume.test")
    assert_problem(await browser.get("/v1/me"), 401, "unauthenticated")


async def test_logout_from_an_html_form_carries_the_token_as_a_field(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    await _signed_in(browser, provider, factory, db)
    token = browser.cookies["plume_csrf"]
    response = await browser.post("/auth/logout", data={"csrf_token": token})
    assert response.status_code == 303, response.text
    assert (await browser.get("/v1/me")).status_code == 401


async def test_a_signed_in_agent_erases_its_own_draft_not_a_colleagues(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    commune = await factory.commune()
    await _signed_in(browser, provider, factory, db, organization=commune)
    request = {
        "kind": "courrier",
        "subject": "Réponse à une demande de salle",
        "recipient": {"name": "M. Paul Renard"},
        "points": ["Confirmer la réservation de la salle des fêtes le 3 avril 2027."],
    }
    mine = await browser.post("/v1/drafts", json=request, headers=csrf(browser))
    assert mine.status_code == 201, mine.text
    colleague = await factory.key(commune, "agent")
    theirs = await browser.post("/v1/drafts", json=request, headers=colleague.headers)
    refused = await browser.delete(f"/v1/drafts/{theirs.json()['id']}", headers=csrf(browser))
    assert_problem(refused, 403, "forbidden")
    erased = await browser.delete(f"/v1/drafts/{mine.json()['id']}", headers=csrf(browser))
    assert erased.status_code == 204, erased.text
    assert (await browser.get(f"/v1/drafts/{mine.json()['id']}")).json()["status"] == "erased"


async def test_ended_sessions_are_purged_after_a_week(
    browser: AsyncClient,
    provider: MockProvider,
    factory: Factory,
    db: AsyncSession,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    agent = await _signed_in(browser, provider, factory, db)
    await _again(browser, provider, agent)
    # Both sessions began in the test's transaction (one `now()`): tell them apart by the
    # session this browser holds.
    listed = (await browser.get("/v1/me/sessions")).json()
    items = listed["items"] if isinstance(listed, dict) else listed
    [current] = [uuid.UUID(item["id"]) for item in items if item["current"]]
    [old] = [uuid.UUID(item["id"]) for item in items if not item["current"]]
    await db.execute(
        update(AgentSession)
        .where(AgentSession.id == old)
        .values(revoked_at=datetime.now(UTC) - timedelta(days=8))
    )
    await db.flush()
    await purge(session_factory)
    left = (
        await db.execute(select(AgentSession.id).where(AgentSession.agent_id == agent.id))
    ).scalars()
    assert list(left) == [current]
    assert (await browser.get("/v1/me")).status_code == 200
