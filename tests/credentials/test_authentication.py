"""Authentication with an API key: revocation seen at once by another instance, last use,
refused credentials, expiry, HMAC at rest and rotation of the server secret, and
suspension."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from pydantic import SecretStr
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from plume.app import create_app
from plume.credentials.secrets import generate_key, is_well_formed
from plume.db import create_engine, create_session_factory
from plume.models import ApiKey, Organization
from tests.credentials.helpers import Tenant, future, hmac_sha256, key_row
from tests.support.chat import chat_body
from tests.support.clients import AppFactory, bearer, client_for
from tests.support.factories import Factory, Key
from tests.support.problems import assert_problem
from tests.support.settings import TEST_SECRET, make_settings, random_secret

# --------------------------------------------------------------------------------------
# Another instance of the application, on a database with real commits
# --------------------------------------------------------------------------------------


@dataclass
class Committed:
    operator: Key
    commune: Organization
    agent: Key
    admin: Key
    read: Callable[[str], Awaitable[Any]]


@pytest.fixture
async def committed(committed_database_url: str) -> AsyncIterator[Committed]:
    engine = create_engine(committed_database_url, pool_size=1)
    sessions = create_session_factory(engine)
    async with sessions() as session, session.begin():
        factory = Factory(session, TEST_SECRET)
        commune = await factory.commune("Commune engagée")
        operator = await factory.operator_key()
        agent = await factory.key(commune, "agent")
        admin = await factory.key(commune, "tenant_admin")

    async def read(key_id: str) -> Any:
        async with sessions() as session:
            return await key_row(session, key_id)

    try:
        yield Committed(operator, commune, agent, admin, read)
    finally:
        await engine.dispose()


@asynccontextmanager
async def instance(database_url: str) -> AsyncIterator[AsyncClient]:
    """One more application process: its own engine and pool, production transactions."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with client_for(create_app(make_settings(database_url), engine=engine)) as client:
            yield client
    finally:
        await engine.dispose()


async def test_revocation_is_seen_at_once_by_another_instance(
    committed_database_url: str, committed: Committed
) -> None:
    async with (
        instance(committed_database_url) as first,
        instance(committed_database_url) as second,
    ):
        # Both instances have served the key (any cache would now hold it).
        for client in (first, second):
            response = await client.get("/v1/organization", headers=committed.agent.headers)
            assert response.status_code == 200, response.text

        revoked = await first.delete(
            f"/v1/admin/api-keys/{committed.agent.id}", headers=committed.operator.headers
        )
        assert revoked.status_code == 204, revoked.text

        for client in (second, first):
            refused = await client.get("/v1/organization", headers=committed.agent.headers)
            assert_problem(refused, 401, "unauthenticated")
        ok = await second.get("/v1/organization", headers=committed.admin.headers)
        assert ok.status_code == 200, ok.text
    assert (await committed.read(committed.agent.id)).revoked_at is not None


async def test_last_used_at_is_set_on_first_use_and_not_rewritten_right_after(
    committed_database_url: str, committed: Committed
) -> None:
    assert (await committed.read(committed.agent.id)).last_used_at is None
    async with instance(committed_database_url) as client:
        first = await client.get("/v1/organization", headers=committed.agent.headers)
        assert first.status_code == 200, first.text
        used = (await committed.read(committed.agent.id)).last_used_at
        assert used is not None
        assert abs(datetime.now(UTC) - used) < timedelta(minutes=1)

        second = await client.get("/v1/organization", headers=committed.agent.headers)
        assert second.status_code == 200, second.text
        assert (await committed.read(committed.agent.id)).last_used_at == used

        listing = await client.get("/v1/organization/api-keys", headers=committed.admin.headers)
        item = next(i for i in listing.json()["items"] if i["id"] == committed.agent.id)
        assert datetime.fromisoformat(item["last_used_at"]) == used


async def test_last_used_at_older_than_a_minute_is_refreshed(
    client: AsyncClient, db: AsyncSession, tenant: Tenant
) -> None:
    stale = datetime.now(UTC) - timedelta(minutes=5)
    await db.execute(
        update(ApiKey).where(ApiKey.id == uuid.UUID(tenant.agent.id)).values(last_used_at=stale)
    )
    response = await client.get("/v1/organization", headers=tenant.agent.headers)
    assert response.status_code == 200, response.text
    refreshed = (await key_row(db, tenant.agent.id)).last_used_at
    assert refreshed > stale + timedelta(minutes=4)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("GET", "/v1/models", None), ("POST", "/v1/chat/completions", chat_body())],
)
async def test_provider_routes_refresh_last_used_at_too(
    client: AsyncClient,
    db: AsyncSession,
    tenant: Tenant,
    method: str,
    path: str,
    body: dict[str, object] | None,
) -> None:
    """Their first transaction (authentication, then the reservation) commits the use,
    whether or not a provider is called."""
    stale = datetime.now(UTC) - timedelta(minutes=5)
    await db.execute(
        update(ApiKey).where(ApiKey.id == uuid.UUID(tenant.agent.id)).values(last_used_at=stale)
    )
    response = await client.request(method, path, json=body, headers=tenant.agent.headers)
    assert response.status_code == 200, response.text
    refreshed = (await key_row(db, tenant.agent.id)).last_used_at
    assert refreshed > stale + timedelta(minutes=4)


# --------------------------------------------------------------------------------------
# Refused credentials
# --------------------------------------------------------------------------------------


BAD_AUTHORIZATION = {
    "missing": None,
    "empty": "",
    "scheme only": "Bearer",
    "blank token": "Bearer  ",
    "not a plume key": "Bearer sk-" + "a" * 48,
    "too short": "Bearer plm_abc",
    "bad characters": "Bearer plm_" + "!$%&" * 12,
    "very long": "Bearer plm_" + "a" * 5000,
    "unknown well-formed": "Bearer plm_" + secrets.token_urlsafe(32),
    "basic": "Basic dXNlcjpwYXNzd29yZA==",
}


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATION.values(), ids=BAD_AUTHORIZATION)
async def test_missing_malformed_or_unknown_keys_are_401(
    client: AsyncClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = await client.get("/v1/organization", headers=headers)
    assert_problem(response, 401, "unauthenticated")


@pytest.mark.parametrize(
    "template",
    ["Basic {key}", "Token {key}", "{key}", "Bearer {key}x", "Bearer x{key}", "Bearer {short}"],
)
async def test_a_real_key_in_the_wrong_form_is_401(
    client: AsyncClient, tenant: Tenant, template: str
) -> None:
    secret = tenant.agent.secret
    authorization = template.format(key=secret, short=secret[:-1])
    response = await client.get("/v1/organization", headers={"Authorization": authorization})
    assert_problem(response, 401, "unauthenticated")
    # The same key, properly sent, works (the refusal was about the form).
    assert (await client.get("/v1/organization", headers=bearer(secret))).status_code == 200


def test_a_key_followed_by_a_newline_is_not_well_formed() -> None:
    # Header values cannot hold one, but the check must not rely on it (`$` would match).
    key = generate_key()
    assert is_well_formed(key)
    assert not is_well_formed(key + "\n")
    assert not is_well_formed(" " + key)


async def test_the_401_carries_the_callers_request_id(client: AsyncClient) -> None:
    response = await client.get("/v1/organization", headers={"X-Request-ID": "mairie-42"})
    body = assert_problem(response, 401, "unauthenticated")
    assert body["request_id"] == "mairie-42"


async def test_expired_key_is_401(client: AsyncClient, db: AsyncSession, tenant: Tenant) -> None:
    response = await client.post(
        f"/v1/admin/organizations/{tenant.commune.id}/api-keys",
        json={"name": "Stagiaire", "role": "agent", "expires_at": future()},
        headers=tenant.operator.headers,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert datetime.fromisoformat(created["expires_at"]) > datetime.now(UTC)
    assert (await client.get("/v1/organization", headers=bearer(created["key"]))).status_code == 200

    await db.execute(
        update(ApiKey)
        .where(ApiKey.id == uuid.UUID(created["id"]))
        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    refused = await client.get("/v1/organization", headers=bearer(created["key"]))
    assert_problem(refused, 401, "unauthenticated")

    listing = await client.get(
        f"/v1/admin/organizations/{tenant.commune.id}/api-keys", headers=tenant.operator.headers
    )
    item = next(i for i in listing.json()["items"] if i["id"] == created["id"])
    assert item["status"] == "expired"


# --------------------------------------------------------------------------------------
# At rest: HMAC keyed by the server secret, and rotation of that secret
# --------------------------------------------------------------------------------------


async def test_the_stored_hash_is_an_hmac_keyed_by_the_server_secret(
    client: AsyncClient, db: AsyncSession, tenant: Tenant
) -> None:
    # A key minted over HTTP (the app runs with TEST_SECRET) and one minted by the service.
    response = await client.post(
        f"/v1/admin/organizations/{tenant.commune.id}/api-keys",
        json={"name": "Accueil", "role": "agent"},
        headers=tenant.operator.headers,
    )
    assert response.status_code == 201, response.text
    minted = [
        (response.json()["id"], response.json()["key"]),
        (tenant.agent.id, tenant.agent.secret),
    ]
    versions = set()
    for key_id, secret in minted:
        row = await key_row(db, key_id)
        assert row.secret_hash == hmac_sha256(TEST_SECRET, secret)
        assert row.secret_hash != hashlib.sha256(secret.encode()).hexdigest()
        assert row.secret_version
        assert TEST_SECRET not in row.secret_version
        versions.add(row.secret_version)
    # One secret, one version; another secret, another version.
    assert len(versions) == 1
    other = await Factory(db, random_secret()).key(tenant.commune)
    assert (await key_row(db, other.id)).secret_version not in versions


async def test_rotation_keeps_old_keys_working_and_rehashes_them(
    make_app: AppFactory, db: AsyncSession, database_url: str
) -> None:
    s1, s2 = random_secret(), random_secret()
    old_factory = Factory(db, s1)
    commune = await old_factory.commune("Commune en rotation")
    key = await old_factory.key(commune, "agent")
    before = await key_row(db, key.id)
    assert before.secret_hash == hmac_sha256(s1, key.secret)
    version_s2 = (await key_row(db, (await Factory(db, s2).key(commune)).id)).secret_version
    assert before.secret_version != version_s2

    only_new = make_settings(database_url, secret_key=SecretStr(s2))
    rotating = make_settings(
        database_url, secret_key=SecretStr(s2), previous_secret_keys=[SecretStr(s1)]
    )
    async with (
        client_for(make_app(settings=only_new)) as new_only,
        client_for(make_app(settings=rotating)) as during_rotation,
    ):
        # The secret matters: without S1 among the previous secrets, the old key is unknown.
        assert_problem(
            await new_only.get("/v1/organization", headers=key.headers), 401, "unauthenticated"
        )

        response = await during_rotation.get("/v1/organization", headers=key.headers)
        assert response.status_code == 200, response.text
        assert response.json()["id"] == str(commune.id)

        after = await key_row(db, key.id)
        assert after.secret_hash == hmac_sha256(s2, key.secret)
        assert after.secret_version == version_s2

        # Re-hashed: it now works with S2 alone.
        for client in (new_only, during_rotation):
            again = await client.get("/v1/organization", headers=key.headers)
            assert again.status_code == 200, again.text


# --------------------------------------------------------------------------------------
# Suspension
# --------------------------------------------------------------------------------------


async def set_status(
    client: AsyncClient, operator: Key, organization_id: uuid.UUID, status: str
) -> None:
    response = await client.patch(
        f"/v1/admin/organizations/{organization_id}",
        json={"status": status},
        headers=operator.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == status


async def test_a_suspended_communes_keys_are_403(
    client: AsyncClient, factory: Factory, tenant: Tenant
) -> None:
    neighbour = await factory.key(await factory.commune("Voisine"), "agent")
    await set_status(client, tenant.operator, tenant.commune.id, "suspended")

    for key, url in [
        (tenant.agent, "/v1/organization"),
        (tenant.admin, "/v1/organization"),
        (tenant.admin, "/v1/organization/api-keys"),
    ]:
        assert_problem(await client.get(url, headers=key.headers), 403, "organization_suspended")
    assert (await client.get("/v1/organization", headers=neighbour.headers)).status_code == 200

    await set_status(client, tenant.operator, tenant.commune.id, "active")
    assert (await client.get("/v1/organization", headers=tenant.agent.headers)).status_code == 200


async def test_a_suspended_epci_makes_its_communes_keys_403(
    client: AsyncClient, factory: Factory
) -> None:
    operator = await factory.operator_key()
    epci = await factory.epci("Communauté suspendue")
    member = await factory.commune("Commune membre", parent=epci)
    other_epci = await factory.epci("Communauté active")
    outsider = await factory.commune("Commune d'ailleurs", parent=other_epci)
    epci_admin = await factory.key(epci, "tenant_admin")
    member_agent = await factory.key(member, "agent")
    member_admin = await factory.key(member, "tenant_admin")
    outsider_agent = await factory.key(outsider, "agent")

    await set_status(client, operator, epci.id, "suspended")
    for key in (epci_admin, member_agent, member_admin):
        response = await client.get("/v1/organization", headers=key.headers)
        assert_problem(response, 403, "organization_suspended")
    assert (await client.get("/v1/organization", headers=outsider_agent.headers)).status_code == 200
    # The commune itself is not suspended: its status is untouched, its EPCI's applies.
    own = await client.get(f"/v1/admin/organizations/{member.id}", headers=operator.headers)
    assert own.json()["status"] == "active"

    await set_status(client, operator, epci.id, "active")
    assert (await client.get("/v1/organization", headers=member_agent.headers)).status_code == 200
