"""OAuth2 clients as their administrators and their machines rely on them: created with a
secret shown once and stored as an HMAC, listed without it, revoked; tokens by
client_secret_basic and client_secret_post, and the token endpoint's RFC 6749 errors."""

from __future__ import annotations

import base64
import uuid

from httpx import AsyncClient
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from plume.models import OAuthClient
from tests.audit.helpers import body, entries
from tests.credentials.helpers import Tenant, hmac_sha256
from tests.oauth.helpers import (
    FORM,
    Client,
    as_key,
    assert_oauth_error,
    basic,
    create_client,
    token_response,
    unverified,
)
from tests.support.problems import assert_problem
from tests.support.settings import TEST_SECRET

# --------------------------------------------------------------------------------------
# Creating, listing, revoking
# --------------------------------------------------------------------------------------


async def test_a_tenant_admin_creates_a_client_whose_secret_is_shown_once(
    client: AsyncClient, db: AsyncSession, tenant: Tenant
) -> None:
    response = await client.post(
        "/v1/organization/oauth-clients",
        json={"name": "  Logiciel   de courrier ", "role": "agent"},
        headers=tenant.admin.headers,
    )
    assert response.status_code == 201, response.text
    assert "no-store" in response.headers["cache-control"]
    created = response.json()
    assert created["client_id"].startswith("plc_")
    assert created["client_secret"].startswith("plcs_")
    assert created["name"] == "Logiciel de courrier"
    assert created["role"] == "agent"
    assert created["status"] == "active"
    assert created["organization_id"] == str(tenant.commune.id)
    assert created["created_by"] == tenant.admin.id
    assert created["created_at"]
    secret = created["client_secret"]

    listing = await client.get("/v1/organization/oauth-clients", headers=tenant.admin.headers)
    assert listing.status_code == 200, listing.text
    assert secret not in listing.text
    [item] = [i for i in listing.json()["items"] if i["id"] == created["id"]]
    assert "client_secret" not in item
    assert item["client_id"] == created["client_id"]

    # Stored as the HMAC of the secret under the server secret, never as itself.
    stored = await db.scalar(
        select(OAuthClient.secret_hash).where(OAuthClient.id == uuid.UUID(created["id"]))
    )
    assert stored == hmac_sha256(TEST_SECRET, secret)
    row = await db.scalar(
        text("SELECT row_to_json(c)::text FROM oauth_clients c WHERE id = :id"),
        {"id": uuid.UUID(created["id"])},
    )
    assert row is not None
    assert secret not in row

    [entry] = [e for e in await entries(db, tenant.commune) if e.action == "oauth_client.create"]
    recorded = body(entry)
    assert recorded["target"] == {"type": "oauth_client", "id": created["id"]}
    assert recorded["details"] == {
        "name": "Logiciel de courrier",
        "role": "agent",
        "client_id": created["client_id"],
    }
    assert secret not in entry.body


async def test_the_operator_creates_lists_and_revokes_a_tenants_clients(
    client: AsyncClient, tenant: Tenant
) -> None:
    url = f"/v1/admin/organizations/{tenant.commune.id}/oauth-clients"
    response = await client.post(
        url, json={"name": "Portail", "role": "tenant_admin"}, headers=tenant.operator.headers
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert {"id", "client_id", "client_secret", "name", "role", "created_at"} <= set(created)
    listing = await client.get(url, headers=tenant.operator.headers)
    assert [i["id"] for i in listing.json()["items"]] == [created["id"]]
    revoked = await client.delete(
        f"/v1/admin/oauth-clients/{created['id']}", headers=tenant.operator.headers
    )
    assert revoked.status_code == 204, revoked.text
    listing = await client.get(url, headers=tenant.operator.headers)
    assert listing.json()["items"][0]["status"] == "revoked"
    # A tenant admin does not reach the operator's routes.
    assert_problem(await client.get(url, headers=tenant.admin.headers), 403, "forbidden")


async def test_who_may_create_which_client(client: AsyncClient, tenant: Tenant) -> None:
    url = "/v1/organization/oauth-clients"
    agent = await client.post(
        url, json={"name": "x", "role": "agent"}, headers=tenant.agent.headers
    )
    assert_problem(agent, 403, "forbidden")
    # No client is an operator admin.
    above = await client.post(
        url, json={"name": "x", "role": "operator_admin"}, headers=tenant.admin.headers
    )
    assert_problem(above, 422, "invalid_request")
    blank = await client.post(
        url, json={"name": "  ", "role": "agent"}, headers=tenant.admin.headers
    )
    assert_problem(blank, 422, "invalid_request")
    # An agent client cannot create a client either (nor a key).
    machine = await as_key(client, await create_client(client, tenant.admin))
    for path in (url, "/v1/organization/api-keys"):
        refused = await client.post(
            path, json={"name": "x", "role": "agent"}, headers=machine.headers
        )
        assert_problem(refused, 403, "forbidden")


async def test_an_epci_admin_creates_a_client_for_one_of_its_communes(
    client: AsyncClient, tenant: Tenant, factory: object
) -> None:
    from tests.support.factories import Factory

    assert isinstance(factory, Factory)
    epci = await factory.epci()
    commune = await factory.commune("Allouville-Bellefosse", parent=epci)
    admin = await factory.key(epci, "tenant_admin")
    created = await create_client(client, admin, organization_id=str(commune.id))
    me = await client.get("/v1/organization", headers=(await as_key(client, created)).headers)
    assert me.status_code == 200, me.text
    assert me.json()["id"] == str(commune.id)
    # Not for another tenant's commune.
    elsewhere = await client.post(
        "/v1/organization/oauth-clients",
        json={"name": "x", "role": "agent"},
        headers=admin.headers,
        params={"organization_id": str(tenant.commune.id)},
    )
    assert_problem(elsewhere, 404, "not_found")


async def test_revoking_is_recorded_and_an_unknown_client_is_404(
    client: AsyncClient, db: AsyncSession, tenant: Tenant
) -> None:
    created = await create_client(client, tenant.admin)
    url = f"/v1/organization/oauth-clients/{created.id}"
    assert (await client.delete(url, headers=tenant.admin.headers)).status_code == 204
    actions = [e.action for e in await entries(db, tenant.commune)]
    assert "oauth_client.revoke" in actions
    unknown = await client.delete(
        f"/v1/organization/oauth-clients/{uuid.uuid4()}", headers=tenant.admin.headers
    )
    assert_problem(unknown, 404, "not_found")


# --------------------------------------------------------------------------------------
# The token endpoint
# --------------------------------------------------------------------------------------


async def test_a_token_by_basic_and_by_post_authentication(
    client: AsyncClient, tenant: Tenant
) -> None:
    created = await create_client(client, tenant.admin)
    for method in ("basic", "post"):
        response = await token_response(client, created, method)
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        answer = response.json()
        assert answer["token_type"] == "Bearer"
        assert 0 < answer["expires_in"] <= 600
        assert answer["scope"] == "agent"
        header, claims = unverified(answer["access_token"])
        assert header["alg"] == "ES256"
        assert header["kid"]
        assert header["typ"] == "at+jwt"
        assert claims["iss"] == "http://127.0.0.1:8000"
        assert claims["aud"] == "http://127.0.0.1:8000/v1"
        assert claims["sub"] == created.client_id
        assert claims["org"] == str(tenant.commune.id)
        assert claims["role"] == "agent"
        assert claims["jti"]
        assert 0 < claims["exp"] - claims["iat"] <= 600
    # The scope the client has may be asked for; no other.
    assert (await token_response(client, created, scope="agent")).status_code == 200
    assert_oauth_error(
        await token_response(client, created, scope="tenant_admin"), 400, "invalid_scope"
    )


async def test_a_wrong_secret_or_an_unknown_client_is_invalid_client(
    client: AsyncClient, tenant: Tenant
) -> None:
    created = await create_client(client, tenant.admin)
    wrong = Client(
        created.id, created.client_id, created.secret[:-2] + "xx", tenant.commune, created.role
    )
    unknown = Client(created.id, "plc_" + "A" * 22, created.secret, tenant.commune, created.role)
    for candidate in (wrong, unknown):
        for method in ("basic", "post"):
            refused = await token_response(client, candidate, method)
            assert_oauth_error(refused, 401, "invalid_client")
            assert refused.headers["www-authenticate"].startswith("Basic")
    # No client authentication at all; another scheme.
    for headers in (FORM, {**FORM, "Authorization": "Bearer plm_nothing"}):
        refused = await client.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, headers=headers
        )
        assert_oauth_error(refused, 401, "invalid_client")


async def test_the_grant_and_the_request_are_checked(client: AsyncClient, tenant: Tenant) -> None:
    created = await create_client(client, tenant.admin)
    auth = {**FORM, **basic(created.client_id, created.secret)}
    cases = [
        ({"grant_type": "password"}, auth, 400, "unsupported_grant_type"),
        ({"grant_type": "authorization_code"}, auth, 400, "unsupported_grant_type"),
        ({}, auth, 400, "invalid_request"),
        # Two client authentications at once.
        (
            {"grant_type": "client_credentials", "client_secret": created.secret},
            auth,
            400,
            "invalid_request",
        ),
    ]
    for data, headers, status, error in cases:
        assert_oauth_error(
            await client.post("/oauth/token", data=data, headers=headers), status, error
        )
    as_json = await client.post(
        "/oauth/token",
        json={"grant_type": "client_credentials"},
        headers=basic(created.client_id, created.secret),
    )
    assert_oauth_error(as_json, 400, "invalid_request")
    repeated = await client.post(
        "/oauth/token",
        content="grant_type=client_credentials&grant_type=client_credentials",
        headers=auth,
    )
    assert_oauth_error(repeated, 400, "invalid_request")
    # Parameters it does not know are ignored, even repeated (RFC 6749, section 3.2).
    unknown = await client.post(
        "/oauth/token",
        content="grant_type=client_credentials&%22%C3%A9=1&%22%C3%A9=2&audience=x",
        headers=auth,
    )
    assert unknown.status_code == 200, unknown.text
    not_utf8 = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={**FORM, "Authorization": "Basic " + base64.b64encode(b"\xff\xfe:x").decode()},
    )
    assert_oauth_error(not_utf8, 401, "invalid_client")


async def test_a_revoked_client_gets_no_token_and_its_token_stops_working_at_once(
    client: AsyncClient, tenant: Tenant
) -> None:
    created = await create_client(client, tenant.admin)
    machine = await as_key(client, created)
    assert (await client.get("/v1/drafts", headers=machine.headers)).status_code == 200
    revoked = await client.delete(
        f"/v1/organization/oauth-clients/{created.id}", headers=tenant.admin.headers
    )
    assert revoked.status_code == 204
    problem = assert_problem(
        await client.get("/v1/drafts", headers=machine.headers), 401, "unauthenticated"
    )
    assert "révoqué" in problem["detail"]
    assert_oauth_error(await token_response(client, created), 401, "invalid_client")


async def test_a_suspended_organisation_gets_no_token_and_its_tokens_are_refused(
    client: AsyncClient, tenant: Tenant
) -> None:
    created = await create_client(client, tenant.admin)
    machine = await as_key(client, created)
    suspended = await client.patch(
        f"/v1/admin/organizations/{tenant.commune.id}",
        json={"status": "suspended"},
        headers=tenant.operator.headers,
    )
    assert suspended.status_code == 200, suspended.text
    assert_problem(
        await client.get("/v1/organization", headers=machine.headers), 403, "organization_suspended"
    )
    assert_oauth_error(await token_response(client, created), 400, "unauthorized_client")
