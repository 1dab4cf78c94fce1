"""The database's own guarantees behind the OAuth2 clients, as behind keys: under the
application role, in a tenant's transaction, no statement changes a client's role or
revocation, nor reads its secret's hash; a client is revoked, within the scope, only
through `oauth_client_revoke`, and found before authentication only through
`oauth_client_lookup`. A client's secret survives a rotation of the server secret."""

from __future__ import annotations

import psycopg
import pytest
from httpx import AsyncClient
from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from plume.credentials.secrets import KeyHasher
from plume.db import TenantScope, enter_tenant_context
from plume.models import ApiKeyRole, OAuthClient
from plume.oauth.service import OAuthClientService
from tests.credentials.helpers import Tenant, hmac_sha256
from tests.oauth.helpers import (
    access_token,
    create_client,
)
from tests.support.clients import AppFactory, client_for
from tests.support.factories import Factory
from tests.support.settings import TEST_SECRET, make_settings, random_secret

STATEMENTS = {
    "role": "UPDATE oauth_clients SET role = 'tenant_admin' WHERE id = :id",
    "revoked_at": "UPDATE oauth_clients SET revoked_at = NULL WHERE id = :id",
    "secret_hash (write)": "UPDATE oauth_clients SET secret_hash = repeat('0', 64) WHERE id = :id",
    "secret_hash (read)": "SELECT secret_hash FROM oauth_clients WHERE id = :id",
    "delete": "DELETE FROM oauth_clients WHERE id = :id",
}


async def _client(factory: Factory) -> OAuthClient:
    """A client of a new commune, created through the service as the system."""
    commune = await factory.commune()
    service = OAuthClientService(factory.session, factory.scope, KeyHasher.from_secret(TEST_SECRET))
    created = await service.create(commune, name="Logiciel", role=ApiKeyRole.AGENT)
    row = await factory.session.get(OAuthClient, created.id)
    assert row is not None
    return row


@pytest.mark.parametrize("statement", list(STATEMENTS.values()), ids=list(STATEMENTS))
async def test_a_tenants_transaction_cannot_change_a_clients_role_or_revocation(
    db: AsyncSession, factory: Factory, statement: str
) -> None:
    client = await _client(factory)
    await enter_tenant_context(db, TenantScope(frozenset({client.organization_id})))
    async with db.begin_nested() as savepoint:
        with pytest.raises(DBAPIError) as refused:
            await db.execute(text(statement), {"id": client.id})
        await savepoint.rollback()
    assert isinstance(refused.value.orig, psycopg.errors.InsufficientPrivilege)


async def test_revoking_goes_through_the_function_within_the_scope_only(
    db: AsyncSession, factory: Factory
) -> None:
    mine, theirs = await _client(factory), await _client(factory)
    await enter_tenant_context(db, TenantScope(frozenset({mine.organization_id})))
    revoke = text("SELECT oauth_client_revoke(CAST(:id AS uuid))")
    assert await db.scalar(revoke, {"id": theirs.id}) is None  # out of scope
    revoked_at = await db.scalar(revoke, {"id": mine.id})
    assert revoked_at is not None
    assert await db.scalar(revoke, {"id": mine.id}) == revoked_at  # once, for good
    # Nothing of another tenant's is seen.
    seen = await db.scalars(select(OAuthClient.id))
    assert set(seen.all()) == {mine.id}


async def test_the_lookup_needs_no_scope_and_checks_the_secret(
    db: AsyncSession, factory: Factory, client: AsyncClient, tenant: Tenant
) -> None:
    created = await create_client(client, tenant.admin)
    await db.execute(text("SET LOCAL ROLE plume_app"))
    assert (await db.execute(text("SELECT count(*) FROM oauth_clients"))).scalar() == 0
    lookup = text(
        "SELECT (l.oauth_client).name, (l.organization).id FROM"
        " oauth_client_lookup(:client_id, CAST(:hashes AS text[]), :version) AS l"
    )
    hasher = KeyHasher.from_secret(TEST_SECRET)
    found = (
        await db.execute(
            lookup,
            {
                "client_id": created.client_id,
                "hashes": [hasher.hash(created.secret)],
                "version": hasher.version,
            },
        )
    ).all()
    assert [tuple(row) for row in found] == [("Logiciel métier", tenant.commune.id)]
    wrong = await db.execute(
        lookup,
        {
            "client_id": created.client_id,
            "hashes": [hasher.hash("plcs_nope")],
            "version": hasher.version,
        },
    )
    assert wrong.all() == []
    await db.execute(text("RESET ROLE"))


async def test_a_client_secret_survives_a_rotation_of_the_server_secret(
    make_app: AppFactory, client: AsyncClient, db: AsyncSession, tenant: Tenant
) -> None:
    created = await create_client(client, tenant.admin)
    new_secret = random_secret()
    rotated = make_settings(
        make_app.settings.database_url,
        secret_key=SecretStr(new_secret),
        previous_secret_keys=[SecretStr(TEST_SECRET)],
    )
    async with client_for(make_app(settings=rotated)) as http:
        await access_token(http, created)
    stored = await db.scalar(
        select(OAuthClient.secret_hash).where(OAuthClient.client_id == created.client_id)
    )
    assert stored == hmac_sha256(new_secret, created.secret)
    # Under yet another secret, without the previous ones, the client is not found.
    gone = make_settings(make_app.settings.database_url, secret_key=SecretStr(random_secret()))
    async with client_for(make_app(settings=gone)) as http:
        response = await http.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": created.client_id,
                "client_secret": created.secret,
            },
        )
        assert response.status_code == 401
