"""The organisation's agents: invited, listed and changed by a tenant admin (a key or a
signed-in agent), audited, and never across tenants."""

from __future__ import annotations

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plume.models import AuditEntry
from tests.drafting.helpers import EXAMPLES
from tests.identity.helpers import csrf, fresh_email, invited, sign_in
from tests.identity.provider import MockProvider
from tests.support.factories import Factory
from tests.support.problems import assert_problem


async def test_a_tenant_admin_invites_lists_and_changes_agents(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    commune = await factory.commune()
    admin = await factory.key(commune, "tenant_admin")
    email = fresh_email()
    body = {"email": email, "role": "agent", "title": "Secrétaire générale de mairie"}
    created = await browser.post("/v1/organization/agents", headers=admin.headers, json=body)
    assert created.status_code == 201, created.text
    agent = created.json()
    assert agent["status"] == "invited"
    assert agent["organization_id"] == str(commune.id)
    again = await browser.post(
        "/v1/organization/agents", headers=admin.headers, json={**body, "email": email.upper()}
    )
    assert_problem(again, 409, "conflict")

    # The invited agent signs in and becomes active.
    assert (await sign_in(browser, provider, email)).status_code == 302
    listed = await browser.get("/v1/organization/agents", headers=admin.headers)
    assert [(a["id"], a["status"]) for a in listed.json()["items"]] == [(agent["id"], "active")]

    changed = await browser.patch(
        f"/v1/organization/agents/{agent['id']}",
        headers=admin.headers,
        json={"role": "tenant_admin", "title": "Maire"},
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["role"], changed.json()["title"]) == ("tenant_admin", "Maire")

    actions = (
        (
            await db.execute(
                select(AuditEntry.action)
                .where(AuditEntry.organization_id == commune.id)
                .order_by(AuditEntry.seq)
            )
        )
        .scalars()
        .all()
    )
    assert [a for a in actions if a.startswith("agent.")] == [
        "agent.invite",
        "agent.sign_in",
        "agent.update",
    ]


async def test_a_signed_in_tenant_admin_invites_with_its_session(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    commune = await factory.commune()
    email = fresh_email()
    await invited(db, commune, email, role="tenant_admin")
    assert (await sign_in(browser, provider, email)).status_code == 302
    response = await browser.post(
        "/v1/organization/agents",
        headers=csrf(browser),
        json={"email": fresh_email(), "role": "agent", "title": "Adjoint au maire"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["organization_id"] == str(commune.id)


async def test_an_agent_of_role_agent_cannot_invite(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    email = fresh_email()
    await invited(db, await factory.commune(), email, role="agent")
    assert (await sign_in(browser, provider, email)).status_code == 302
    response = await browser.post(
        "/v1/organization/agents",
        headers=csrf(browser),
        json={"email": fresh_email(), "role": "agent"},
    )
    assert_problem(response, 403, "forbidden")
    assert_problem(await browser.get("/v1/organization/agents"), 403, "forbidden")


async def test_an_agent_cannot_manage_another_communes_agents(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    mine, other = await factory.commune(), await factory.commune()
    email = fresh_email()
    await invited(db, mine, email, role="tenant_admin")
    stranger = await invited(db, other, fresh_email())
    assert (await sign_in(browser, provider, email)).status_code == 302

    patched = await browser.patch(
        f"/v1/organization/agents/{stranger.id}",
        headers=csrf(browser),
        json={"status": "suspended"},
    )
    assert_problem(patched, 404, "not_found")
    listed = await browser.get("/v1/organization/agents", params={"organization_id": str(other.id)})
    assert_problem(listed, 404, "not_found")
    invited_there = await browser.post(
        "/v1/organization/agents",
        params={"organization_id": str(other.id)},
        headers=csrf(browser),
        json={"email": fresh_email()},
    )
    assert_problem(invited_there, 404, "not_found")


async def test_an_epci_admin_invites_for_its_communes(
    client: AsyncClient, factory: Factory
) -> None:
    epci = await factory.epci()
    commune = await factory.commune(parent=epci)
    elsewhere = await factory.commune()
    admin = await factory.key(epci, "tenant_admin")
    body = {"email": fresh_email(), "role": "tenant_admin", "title": "Maire"}
    response = await client.post(
        "/v1/organization/agents",
        params={"organization_id": str(commune.id)},
        headers=admin.headers,
        json=body,
    )
    assert response.status_code == 201, response.text
    assert response.json()["organization_id"] == str(commune.id)
    refused = await client.post(
        "/v1/organization/agents",
        params={"organization_id": str(elsewhere.id)},
        headers=admin.headers,
        json=body,
    )
    assert_problem(refused, 404, "not_found")


async def test_an_agent_cannot_read_another_communes_drafts(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    other = await factory.commune()
    key = await factory.key(other, "agent")
    created = await browser.post(
        "/v1/drafts",
        headers=key.headers,
        json=EXAMPLES["arrete-course-cycliste"],
    )
    assert created.status_code == 201, created.text
    email = fresh_email()
    await invited(db, await factory.commune(), email, role="tenant_admin")
    assert (await sign_in(browser, provider, email)).status_code == 302
    assert_problem(await browser.get(f"/v1/drafts/{created.json()['id']}"), 404, "not_found")
    assert (await browser.get("/v1/drafts")).json()["items"] == []
