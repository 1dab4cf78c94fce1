"""API keys as their users rely on them: minting, showing once, revoking, self-service by a
tenant admin, the validation of a new key, and the error format."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from plume.models import Organization
from tests.credentials.helpers import Tenant, count_keys, future, key_row
from tests.support.clients import AppFactory, bearer, client_for
from tests.support.factories import Factory, Key
from tests.support.problems import assert_problem
from tests.support.settings import make_settings

# --------------------------------------------------------------------------------------
# Minting, shown once, revoking
# --------------------------------------------------------------------------------------


async def test_operator_mints_a_key_that_is_shown_once(
    client: AsyncClient, db: AsyncSession, tenant: Tenant
) -> None:
    response = await client.post(
        f"/v1/admin/organizations/{tenant.commune.id}/api-keys",
        json={"name": "Secrétariat de mairie", "role": "tenant_admin"},
        headers=tenant.operator.headers,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    secret = created["key"]
    assert secret.startswith("plm_")
    assert len(secret) >= 40
    assert created["organization_id"] == str(tenant.commune.id)
    assert created["role"] == "tenant_admin"
    assert created["name"] == "Secrétariat de mairie"
    assert created["status"] == "active"
    assert created["revoked_at"] is None
    assert created["last_used_at"] is None
    assert created["created_by"] == tenant.operator.id
    # The prefix identifies the key without revealing it.
    assert created["prefix"].startswith("plm_")
    assert secret.startswith(created["prefix"])
    assert len(created["prefix"]) <= 16
    assert "no-store" in response.headers.get("cache-control", "")

    me = await client.get("/v1/organization", headers=bearer(secret))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == str(tenant.commune.id)

    # Never shown again: neither in the operator's list nor in the tenant's.
    for url, headers in [
        (f"/v1/admin/organizations/{tenant.commune.id}/api-keys", tenant.operator.headers),
        ("/v1/organization/api-keys", bearer(secret)),
    ]:
        listing = await client.get(url, headers=headers)
        assert listing.status_code == 200, listing.text
        assert secret not in listing.text
        items = {item["id"]: item for item in listing.json()["items"]}
        assert all("key" not in item for item in items.values())
        assert items[created["id"]]["prefix"] == created["prefix"]

    # Nor stored anywhere in the row.
    row_json = await db.scalar(
        text("SELECT row_to_json(k)::text FROM api_keys k WHERE id = :id"),
        {"id": uuid.UUID(created["id"])},
    )
    assert row_json is not None
    assert secret not in row_json
    assert secret[len(created["prefix"]) :] not in row_json


async def test_every_minted_key_is_different(client: AsyncClient, tenant: Tenant) -> None:
    seen: set[str] = set()
    for _ in range(3):
        response = await client.post(
            f"/v1/admin/organizations/{tenant.commune.id}/api-keys",
            json={"name": "Agent", "role": "agent"},
            headers=tenant.operator.headers,
        )
        assert response.status_code == 201, response.text
        seen.add(response.json()["key"])
    assert len(seen) == 3


async def test_revoked_key_is_refused_on_the_very_next_request(
    client: AsyncClient, tenant: Tenant
) -> None:
    assert (await client.get("/v1/organization", headers=tenant.agent.headers)).status_code == 200

    response = await client.delete(
        f"/v1/admin/api-keys/{tenant.agent.id}", headers=tenant.operator.headers
    )
    assert response.status_code == 204, response.text
    assert response.content == b""

    refused = await client.get("/v1/organization", headers=tenant.agent.headers)
    assert_problem(refused, 401, "unauthenticated")
    # The other key of the same commune is unaffected.
    assert (await client.get("/v1/organization", headers=tenant.admin.headers)).status_code == 200

    listing = await client.get(
        f"/v1/admin/organizations/{tenant.commune.id}/api-keys", headers=tenant.operator.headers
    )
    item = next(i for i in listing.json()["items"] if i["id"] == tenant.agent.id)
    assert item["status"] == "revoked"
    assert item["revoked_at"] is not None


# --------------------------------------------------------------------------------------
# A commune's tenant admin manages its own keys; an agent cannot
# --------------------------------------------------------------------------------------


async def test_tenant_admin_lists_creates_and_revokes_its_own_keys(
    client: AsyncClient, tenant: Tenant
) -> None:
    expires_at = future(hours=24)
    response = await client.post(
        "/v1/organization/api-keys",
        json={"name": "Agent d'accueil", "role": "agent", "expires_at": expires_at},
        headers=tenant.admin.headers,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["key"].startswith("plm_")
    assert created["organization_id"] == str(tenant.commune.id)
    assert created["role"] == "agent"
    assert created["created_by"] == tenant.admin.id
    assert datetime.fromisoformat(created["expires_at"]) == datetime.fromisoformat(expires_at)

    me = await client.get("/v1/organization", headers=bearer(created["key"]))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == str(tenant.commune.id)

    listing = await client.get("/v1/organization/api-keys", headers=tenant.admin.headers)
    assert listing.status_code == 200, listing.text
    ids = [item["id"] for item in listing.json()["items"]]
    assert set(ids) == {tenant.admin.id, tenant.agent.id, created["id"]}
    assert created["key"] not in listing.text

    revoked = await client.delete(
        f"/v1/organization/api-keys/{created['id']}", headers=tenant.admin.headers
    )
    assert revoked.status_code == 204, revoked.text
    assert_problem(
        await client.get("/v1/organization", headers=bearer(created["key"])),
        401,
        "unauthenticated",
    )
    listing = await client.get("/v1/organization/api-keys", headers=tenant.admin.headers)
    item = next(i for i in listing.json()["items"] if i["id"] == created["id"])
    assert item["status"] == "revoked"
    assert (await client.get("/v1/organization", headers=tenant.admin.headers)).status_code == 200


async def test_an_agent_cannot_manage_keys(
    client: AsyncClient, db: AsyncSession, tenant: Tenant
) -> None:
    before = await count_keys(db)
    attempts = [
        ("GET", "/v1/organization/api-keys", None),
        ("POST", "/v1/organization/api-keys", {"name": "Moi-même", "role": "tenant_admin"}),
        ("DELETE", f"/v1/organization/api-keys/{tenant.admin.id}", None),
        ("DELETE", f"/v1/organization/api-keys/{tenant.agent.id}", None),
    ]
    for method, url, body in attempts:
        response = await client.request(method, url, json=body, headers=tenant.agent.headers)
        assert_problem(response, 403, "forbidden")
    assert await count_keys(db) == before
    for key in (tenant.admin, tenant.agent):
        assert (await key_row(db, key.id)).revoked_at is None
        assert (await client.get("/v1/organization", headers=key.headers)).status_code == 200


# --------------------------------------------------------------------------------------
# Validation of a new key
# --------------------------------------------------------------------------------------


def assert_invalid(response: Response, field: str) -> dict[str, Any]:
    return assert_problem(response, 422, "invalid_request", field=field)


def mint_routes(tenant: Tenant, operator_org: Organization) -> list[tuple[str, str, Key]]:
    return [
        (
            "operator, for a commune",
            f"/v1/admin/organizations/{tenant.commune.id}/api-keys",
            tenant.operator,
        ),
        (
            "operator, for itself",
            f"/v1/admin/organizations/{operator_org.id}/api-keys",
            tenant.operator,
        ),
        ("tenant admin", "/v1/organization/api-keys", tenant.admin),
    ]


async def test_operator_admin_cannot_be_requested_over_http(
    client: AsyncClient,
    db: AsyncSession,
    factory: Factory,
    tenant: Tenant,
    subtests: pytest.Subtests,
) -> None:
    before = await count_keys(db)
    for label, url, caller in mint_routes(tenant, await factory.operator()):
        for role in ("operator_admin", "superadmin"):
            with subtests.test(route=label, role=role):
                response = await client.post(
                    url, json={"name": "Pouvoir", "role": role}, headers=caller.headers
                )
                body = assert_invalid(response, "role")
                assert "key" not in body
    assert await count_keys(db) == before


async def test_the_refusal_of_a_role_is_worded_entirely_in_french(
    client: AsyncClient, tenant: Tenant
) -> None:
    """The allowed values are listed in French (« ou »), not with pydantic's English « or »."""
    response = await client.post(
        f"/v1/admin/organizations/{tenant.commune.id}/api-keys",
        json={"name": "Pouvoir", "role": "operator_admin"},
        headers=tenant.operator.headers,
    )
    body = assert_invalid(response, "role")
    for message in [body["detail"], *(error["message"] for error in body["errors"])]:
        assert "tenant_admin" in message
        assert not re.search(r"\bor\b", message), message


async def test_expires_at_must_be_a_future_instant_with_an_offset(
    client: AsyncClient,
    db: AsyncSession,
    factory: Factory,
    tenant: Tenant,
    subtests: pytest.Subtests,
) -> None:
    before = await count_keys(db)
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    naive = (datetime.now(UTC) + timedelta(days=1)).replace(tzinfo=None).isoformat()
    for label, url, caller in mint_routes(tenant, await factory.operator()):
        for case, value in [("past", past), ("no offset", naive), ("not a date", "demain")]:
            with subtests.test(route=label, case=case):
                response = await client.post(
                    url,
                    json={"name": "Temporaire", "role": "agent", "expires_at": value},
                    headers=caller.headers,
                )
                assert_invalid(response, "expires_at")
    assert await count_keys(db) == before


async def test_with_a_maximum_lifetime_keys_expire_by_then(
    make_app: AppFactory, tenant: Tenant, factory: Factory, subtests: pytest.Subtests
) -> None:
    settings = make_settings(make_app.settings.database_url, api_key_max_days=90)
    latest = datetime.now(UTC) + timedelta(days=90)
    async with client_for(make_app(settings=settings)) as http:
        for label, url, caller in mint_routes(tenant, await factory.operator()):
            with subtests.test(route=label):
                # Asked without an expiry: it gets the longest one.
                given = await http.post(
                    url, json={"name": "Sans date", "role": "agent"}, headers=caller.headers
                )
                assert given.status_code == 201, given.text
                expires = datetime.fromisoformat(given.json()["expires_at"])
                assert abs(expires - latest) < timedelta(minutes=1)
                # Asked for longer: refused, naming the field and the limit.
                too_long = (latest + timedelta(days=1)).isoformat()
                refused = await http.post(
                    url,
                    json={"name": "Trop longue", "role": "agent", "expires_at": too_long},
                    headers=caller.headers,
                )
                body = assert_invalid(refused, "expires_at")
                assert "90 jours" in body["errors"][0]["message"]
                # Shorter: kept as asked.
                soon = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)
                kept = await http.post(
                    url,
                    json={"name": "Courte", "role": "agent", "expires_at": soon.isoformat()},
                    headers=caller.headers,
                )
                assert kept.status_code == 201, kept.text
                assert datetime.fromisoformat(kept.json()["expires_at"]) == soon


async def test_a_new_key_needs_a_name_and_no_unknown_fields(
    client: AsyncClient, tenant: Tenant
) -> None:
    url = f"/v1/admin/organizations/{tenant.commune.id}/api-keys"
    headers = tenant.operator.headers
    assert_invalid(await client.post(url, json={"role": "agent"}, headers=headers), "name")
    assert_invalid(
        await client.post(url, json={"name": "   ", "role": "agent"}, headers=headers), "name"
    )
    assert_invalid(
        await client.post(
            url, json={"name": "x", "role": "agent", "secret": "plm_x"}, headers=headers
        ),
        "secret",
    )


# --------------------------------------------------------------------------------------
# The error format, across the statuses these routes answer
# --------------------------------------------------------------------------------------


async def test_errors_are_french_problem_details(client: AsyncClient, tenant: Tenant) -> None:
    cases: list[tuple[Response, int, str]] = [
        (await client.get("/v1/organization"), 401, "unauthenticated"),
        (
            await client.get("/v1/admin/organizations", headers=tenant.admin.headers),
            403,
            "forbidden",
        ),
        (
            await client.delete(
                f"/v1/organization/api-keys/{uuid.uuid4()}", headers=tenant.admin.headers
            ),
            404,
            "not_found",
        ),
        (await client.get("/v1/nulle-part", headers=tenant.admin.headers), 404, "not_found"),
        (
            await client.put("/v1/organization/api-keys", headers=tenant.admin.headers),
            405,
            "method_not_allowed",
        ),
        (
            await client.post(
                "/v1/organization/api-keys",
                content=b"{nope",
                headers={**tenant.admin.headers, "Content-Type": "application/json"},
            ),
            422,
            "invalid_request",
        ),
    ]
    request_ids = set()
    for response, status, code in cases:
        body = assert_problem(response, status, code)
        assert body["type"].endswith(code) or body["type"] == "about:blank"
        request_ids.add(body["request_id"])
    assert len(request_ids) == len(cases)  # one id per request
