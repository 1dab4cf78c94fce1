"""Key management follows the role hierarchy (review finding L-7): a tenant admin manages
the keys of its rank and below, never an operator_admin key, even in the operator's own
organisation (whose tenant admins the operator may create); the operator manages them all.
Behind the routes, the database holds the same line."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from plume.credentials.secrets import KeyHasher
from plume.credentials.service import ApiKeyService
from plume.db import TenantScope, enter_tenant_context
from plume.errors import Forbidden
from plume.models import ApiKeyRole
from tests.credentials.helpers import key_row
from tests.support.factories import Factory, Key
from tests.support.problems import assert_problem
from tests.support.settings import TEST_SECRET


@pytest.fixture
async def operator_keys(factory: Factory) -> tuple[Key, Key, Key]:
    """The operator organisation's operator_admin key, a tenant_admin and an agent of it."""
    operator = await factory.operator()
    return (
        await factory.operator_key(),
        await factory.key(operator, "tenant_admin"),
        await factory.key(operator, "agent"),
    )


async def test_a_tenant_admin_does_not_list_operator_admin_keys_as_its_own(
    client: AsyncClient, operator_keys: tuple[Key, Key, Key]
) -> None:
    operator_admin, tenant_admin, agent = operator_keys
    listed = await client.get("/v1/organization/api-keys?limit=200", headers=tenant_admin.headers)
    assert listed.status_code == 200, listed.text
    ids = {item["id"] for item in listed.json()["items"]}
    roles = {item["role"] for item in listed.json()["items"]}
    assert {tenant_admin.id, agent.id} <= ids
    assert operator_admin.id not in ids
    assert roles <= {"tenant_admin", "agent"}
    # The operator sees every key of its organisation, its own rank included.
    organization = operator_admin.organization.id
    every = await client.get(
        f"/v1/admin/organizations/{organization}/api-keys?limit=200",
        headers=operator_admin.headers,
    )
    assert {operator_admin.id, tenant_admin.id, agent.id} <= {
        item["id"] for item in every.json()["items"]
    }


async def test_a_tenant_admin_cannot_revoke_an_operator_admin_key(
    client: AsyncClient, db: AsyncSession, operator_keys: tuple[Key, Key, Key]
) -> None:
    operator_admin, tenant_admin, _ = operator_keys
    refused = await client.delete(
        f"/v1/organization/api-keys/{operator_admin.id}", headers=tenant_admin.headers
    )
    # Its own organisation's key: not hidden (404) but forbidden by role.
    assert_problem(refused, 403, "forbidden")
    assert "operator_admin" in refused.json()["detail"]
    assert (await key_row(db, operator_admin.id)).revoked_at is None
    still = await client.get("/v1/admin/organizations?limit=1", headers=operator_admin.headers)
    assert still.status_code == 200, still.text


async def test_a_tenant_admin_revokes_keys_of_its_rank_and_below(
    client: AsyncClient, factory: Factory, operator_keys: tuple[Key, Key, Key]
) -> None:
    _, tenant_admin, agent = operator_keys
    another_admin = await factory.key(tenant_admin.organization, "tenant_admin")
    for key in (agent, another_admin):
        revoked = await client.delete(
            f"/v1/organization/api-keys/{key.id}", headers=tenant_admin.headers
        )
        assert revoked.status_code == 204, revoked.text
        assert_problem(
            await client.get("/v1/organization", headers=key.headers), 401, "unauthenticated"
        )


async def test_the_operator_revokes_an_operator_admin_key(
    client: AsyncClient, factory: Factory, operator_keys: tuple[Key, Key, Key]
) -> None:
    operator_admin, _, _ = operator_keys
    spare = await factory.operator_key()
    revoked = await client.delete(f"/v1/admin/api-keys/{spare.id}", headers=operator_admin.headers)
    assert revoked.status_code == 204, revoked.text
    assert_problem(
        await client.get("/v1/organization", headers=spare.headers), 401, "unauthenticated"
    )


async def test_no_key_mints_a_key_above_its_own_role(
    client: AsyncClient, db: AsyncSession, operator_keys: tuple[Key, Key, Key]
) -> None:
    _, tenant_admin, _ = operator_keys
    # Over HTTP the role cannot even be asked for (422 naming it)...
    asked = await client.post(
        "/v1/organization/api-keys",
        json={"name": "Pouvoir", "role": "operator_admin"},
        headers=tenant_admin.headers,
    )
    assert_problem(asked, 422, "invalid_request", field="role")
    # ...the service refuses it to a tenant admin's request...
    service = ApiKeyService(
        db, tenant_admin_scope(tenant_admin), KeyHasher.from_secret(TEST_SECRET)
    )
    with pytest.raises(Forbidden):
        await service.mint(
            tenant_admin.organization,
            name="Pouvoir",
            role=ApiKeyRole.OPERATOR_ADMIN,
            caller_role=ApiKeyRole.TENANT_ADMIN,
        )


def tenant_admin_scope(key: Key) -> TenantScope:
    return TenantScope(frozenset({key.organization.id}))


async def _refused(db: AsyncSession, statement: str, **parameters: object) -> BaseException:
    async with db.begin_nested() as savepoint:
        with pytest.raises(DBAPIError) as refused:
            await db.execute(text(statement), parameters)
        await savepoint.rollback()
    assert refused.value.orig is not None
    return refused.value.orig


async def test_the_database_holds_the_line_for_the_operator_organisations_tenant_admin(
    db: AsyncSession, operator_keys: tuple[Key, Key, Key]
) -> None:
    """Under the application role with a tenant admin's scope (its own organisation, even
    the operator's), an operator_admin key is neither minted nor revoked."""
    operator_admin, tenant_admin, agent = operator_keys
    await enter_tenant_context(db, tenant_admin_scope(tenant_admin))
    minted = await _refused(
        db,
        "INSERT INTO api_keys (id, organization_id, name, role, prefix, secret_hash,"
        " secret_version) VALUES (:id, :organization, 'Pouvoir', 'operator_admin',"
        " 'plm_pouvoir', :hash, 'v0')",
        id=uuid.uuid4(),
        organization=tenant_admin.organization.id,
        hash=uuid.uuid4().hex * 2,
    )
    assert isinstance(minted, psycopg.errors.InsufficientPrivilege)
    assert "row-level security" in str(minted)
    revoked = await _refused(db, "SELECT api_key_revoke(:id)", id=operator_admin.id)
    assert isinstance(revoked, psycopg.errors.InsufficientPrivilege)
    # Its own rank and below, it revokes.
    assert await db.scalar(text("SELECT api_key_revoke(:id)"), {"id": agent.id}) is not None
    # With the system's scope (an operator admin), an operator_admin key is revoked too.
    await enter_tenant_context(db, TenantScope.everything())
    assert await db.scalar(text("SELECT api_key_revoke(:id)"), {"id": operator_admin.id})
