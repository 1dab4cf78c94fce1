"""What a client's token may do: draft (the offline provider answers), within the roles
matrix and its own tenant's scope, recorded in the audit trail as the client's; GET /v1/me
for a key and for a client; a background job queued by a client acts for it, and stops if
it is revoked."""

from __future__ import annotations

import uuid

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plume.credentials.auth import principal_for_background_work
from plume.errors import Unauthenticated
from plume.models import Draft
from tests.audit.helpers import body, entries
from tests.credentials.helpers import Tenant
from tests.drafting.helpers import EXAMPLES, created, post_draft
from tests.oauth.helpers import (
    as_key,
    create_client,
)
from tests.support.factories import Factory
from tests.support.problems import assert_problem

LETTER = EXAMPLES["courrier-invitation-reunion-publique"]


async def test_a_draft_made_with_a_token_is_the_clients(
    client: AsyncClient, db: AsyncSession, tenant: Tenant
) -> None:
    machine_client = await create_client(client, tenant.admin)
    machine = await as_key(client, machine_client)
    draft = await created(client, machine, LETTER)
    assert draft["status"] == "draft"
    read = await client.get(f"/v1/drafts/{draft['id']}", headers=machine.headers)
    assert read.status_code == 200, read.text
    # The tenant's own keys see it too: it is the commune's.
    assert (
        await client.get(f"/v1/drafts/{draft['id']}", headers=tenant.agent.headers)
    ).status_code == 200

    row = await db.scalar(select(Draft).where(Draft.id == uuid.UUID(draft["id"])))
    assert row is not None
    assert row.created_by_client_id == uuid.UUID(machine_client.id)
    assert row.created_by_key_id is None

    [entry] = [e for e in await entries(db, tenant.commune) if e.action == "draft.create"]
    actor = body(entry)["actor"]
    assert actor == {"key_id": None, "client_id": machine_client.id, "role": "agent"}
    assert entry.actor_key_id is None


async def test_the_roles_matrix_holds_for_clients(client: AsyncClient, tenant: Tenant) -> None:
    agent = await as_key(client, await create_client(client, tenant.admin, "agent"))
    admin = await as_key(client, await create_client(client, tenant.admin, "tenant_admin"))
    for path in ("/v1/organization/api-keys", "/v1/organization/oauth-clients", "/v1/audit"):
        assert_problem(await client.get(path, headers=agent.headers), 403, "forbidden")
        answer = await client.get(path, headers=admin.headers)
        assert answer.status_code == 200, (path, answer.text)
    for headers in (agent.headers, admin.headers):
        assert_problem(
            await client.get("/v1/admin/organizations", headers=headers), 403, "forbidden"
        )
    # A tenant_admin client manages the tenant's agent keys, as a tenant_admin key does.
    minted = await client.post(
        "/v1/organization/api-keys",
        json={"name": "Poste 2", "role": "agent"},
        headers=admin.headers,
    )
    assert minted.status_code == 201, minted.text
    assert minted.json()["created_by"] is None


async def test_a_communes_client_cannot_read_another_communes_drafts(
    client: AsyncClient, factory: Factory, tenant: Tenant
) -> None:
    other = await factory.commune("Fécamp")
    other_agent = await factory.key(other, "agent")
    theirs = await created(client, other_agent, LETTER)
    machine = await as_key(client, await create_client(client, tenant.admin))
    assert_problem(
        await client.get(f"/v1/drafts/{theirs['id']}", headers=machine.headers), 404, "not_found"
    )
    listing = await client.get("/v1/drafts", headers=machine.headers)
    assert listing.status_code == 200
    assert theirs["id"] not in listing.text


async def test_me_for_a_key_and_for_a_client(client: AsyncClient, tenant: Tenant) -> None:
    by_key = await client.get("/v1/me", headers=tenant.agent.headers)
    assert by_key.status_code == 200, by_key.text
    assert by_key.json() == {
        "kind": "api_key",
        "acr": None,
        "id": tenant.agent.id,
        "name": "test agent",
        "email": None,
        "title": None,
        "role": "agent",
        "organization": {"id": str(tenant.commune.id), "name": "Yvetot", "kind": "commune"},
    }
    machine_client = await create_client(client, tenant.admin, "tenant_admin", name="Portail")
    machine = await as_key(client, machine_client)
    by_client = await client.get("/v1/me", headers=machine.headers)
    assert by_client.status_code == 200, by_client.text
    assert by_client.json() == {
        "kind": "oauth_client",
        "acr": None,
        "id": machine_client.id,
        "name": "Portail",
        "email": None,
        "title": None,
        "role": "tenant_admin",
        "organization": {"id": str(tenant.commune.id), "name": "Yvetot", "kind": "commune"},
    }
    assert_problem(await client.get("/v1/me"), 401, "unauthenticated")


async def test_a_job_queued_by_a_client_acts_for_it_until_it_is_revoked(
    client: AsyncClient, db: AsyncSession, tenant: Tenant
) -> None:
    machine_client = await create_client(client, tenant.admin)
    client_uuid = uuid.UUID(machine_client.id)
    principal = await principal_for_background_work(db, tenant.commune.id, None, client_uuid)
    assert principal.client_id == client_uuid
    assert principal.key_id is None
    revoked = await client.delete(
        f"/v1/organization/oauth-clients/{machine_client.id}", headers=tenant.admin.headers
    )
    assert revoked.status_code == 204
    with pytest.raises(Unauthenticated, match="révoqué"):
        await principal_for_background_work(db, tenant.commune.id, None, client_uuid)


async def test_a_synthese_queued_by_a_client_names_it(
    client: AsyncClient, db: AsyncSession, tenant: Tenant
) -> None:
    machine = await as_key(client, await create_client(client, tenant.admin))
    response = await post_draft(
        client, machine, {"kind": "synthese", "source_text": "Un texte assez court."}
    )
    assert response.status_code in (201, 202), response.text
    row = await db.scalar(select(Draft).where(Draft.id == uuid.UUID(response.json()["id"])))
    assert row is not None
    assert row.created_by_client_id == uuid.UUID(machine.id)


async def test_an_epci_admin_clients_token_reaches_its_communes_as_its_key_would(
    client: AsyncClient, factory: Factory
) -> None:
    epci = await factory.epci()
    commune = await factory.commune("Valliquerville", parent=epci)
    elsewhere = await factory.commune("Bolbec")
    admin = await factory.key(epci, "tenant_admin")
    machine = await as_key(client, await create_client(client, admin, "tenant_admin"))
    own = await client.get(
        "/v1/organization/api-keys",
        headers=machine.headers,
        params={"organization_id": str(commune.id)},
    )
    assert own.status_code == 200, own.text
    other = await client.get(
        "/v1/organization/api-keys",
        headers=machine.headers,
        params={"organization_id": str(elsewhere.id)},
    )
    assert_problem(other, 404, "not_found")


async def test_a_clients_use_is_recorded(client: AsyncClient, tenant: Tenant) -> None:
    created = await create_client(client, tenant.admin)
    machine = await as_key(client, created)
    assert (await client.get("/v1/drafts", headers=machine.headers)).status_code == 200
    listing = await client.get("/v1/organization/oauth-clients", headers=tenant.admin.headers)
    [item] = [i for i in listing.json()["items"] if i["id"] == created.id]
    assert item["last_used_at"] is not None
