"""A provider-backed request by API key, without an Idempotency-Key, takes no session for
its key's lookup and its quota reservation (plume.web.transaction.FirstConnection): both
go on one pooled connection in autocommit mode, each its own transaction, and the
connection goes back before the provider is called. On a real database with a real pool
(one connection and one spare, so that every request reuses them): whatever the request's
end — served, refused for its quota, its key or its organisation, its body — it holds
nothing afterwards, and the connection goes back to the pool as the sessions expect it (out
of autocommit, no transaction open, no tenant context left on it)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from httpx import AsyncClient
from psycopg.pq import TransactionStatus
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from plume.app import create_app
from plume.credentials.auth import hashers
from plume.credentials.repository import ApiKeyRepository, lookup_alone
from plume.db import (
    TenantScope,
    create_engine,
    create_session_factory,
    driver_of,
    pooled_driver_connection,
)
from tests.support.chat import chat_body
from tests.support.clients import client_for
from tests.support.factories import Factory, Key
from tests.support.problems import assert_openai_error
from tests.support.quotas import ARTICLE
from tests.support.settings import TEST_SECRET, make_settings


@dataclass
class Served:
    http: AsyncClient
    engine: AsyncEngine
    operator: Key
    agent: Key
    neighbour: Key
    epci_admin: Key
    commune_id: uuid.UUID
    epci_id: uuid.UUID
    admin_url: str

    def admin(self, statement: str, *parameters: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            return admin.execute(statement, parameters).fetchall()

    def kill_connections(self) -> None:
        """Every connection to the database but this one closed by the server (a restart)."""
        self.admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )

    def held(self) -> tuple[int, int]:
        """Reservations held by the commune, and the requests they hold on its ledger."""
        (reservations,) = self.admin(
            "SELECT count(*) FROM quota_reservations WHERE organization_id = %s", self.commune_id
        )[0]
        (requests,) = self.admin(
            "SELECT reserved_requests FROM quota_ledger WHERE organization_id = %s",
            self.commune_id,
        )[0]
        return int(reservations), int(requests)

    async def quota(self, limit: int) -> None:
        answer = await self.http.put(
            f"/v1/admin/organizations/{self.commune_id}/quotas",
            json=[{"metric": "requests", "period": "day", "limit": limit}],
            headers=self.operator.headers,
        )
        assert answer.status_code == 200, answer.text


@pytest.fixture
async def served(committed_database_url: str) -> AsyncIterator[Served]:
    # One pooled connection and one spare: every request reuses what the previous left.
    engine = create_engine(committed_database_url, pool_size=1, pool_timeout=3)
    async with create_session_factory(engine)() as session, session.begin():
        setup = Factory(session, TEST_SECRET)
        operator = await setup.operator_key()
        epci = await setup.epci("Communauté de la première transaction")
        commune = await setup.commune("Commune de la première transaction", parent=epci)
        neighbour_commune = await setup.commune("Commune voisine", parent=epci)
        agent = await setup.key(commune)
        neighbour = await setup.key(neighbour_commune)
        epci_admin = await setup.key(epci, role="tenant_admin")
    admin_url = committed_database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    app = create_app(make_settings(committed_database_url), engine=engine)
    try:
        async with client_for(app) as http:
            served = Served(
                http, engine, operator, agent, neighbour, epci_admin, commune.id, epci.id, admin_url
            )
            await served.quota(50)
            yield served
    finally:
        await engine.dispose()


async def _pooled_connections_as_sessions_expect_them(engine: AsyncEngine) -> None:
    """Both connections the pool may hold: out of autocommit mode, no transaction open, no
    role or scope left from a request."""
    async with engine.connect() as first, engine.connect() as second:
        for connection in (first, second):
            driver = await driver_of(connection)
            assert driver.autocommit is False
            assert driver.info.transaction_status is TransactionStatus.IDLE
            cursor = await driver.execute(
                "SELECT current_user, current_setting('plume.organizations', true)"
            )
            role, scope = await cursor.fetchone() or (None, None)
            await driver.rollback()
            assert role != "plume_app"
            assert not scope


async def test_a_chat_by_api_key_goes_through_no_session_and_is_charged_once(
    served: Served,
) -> None:
    """Served, charged once, audited; no session began a transaction for it (its lookup, its
    reservation and its settlement are the pooled connections' own)."""
    begun: list[Session] = []

    def seen(session: Session, *_: Any) -> None:
        begun.append(session)

    event.listen(Session, "after_begin", seen)
    try:
        answer = await served.http.post(
            "/v1/chat/completions", json=chat_body(), headers=served.agent.headers
        )
    finally:
        event.remove(Session, "after_begin", seen)
    assert answer.status_code == 200, answer.text
    assert answer.headers["ratelimit-limit"] == "50"
    assert answer.headers["ratelimit-remaining"] == "49"
    assert begun == []
    assert served.held() == (0, 0)
    (day_requests,) = served.admin(
        "SELECT day_requests FROM quota_ledger WHERE organization_id = %s", served.commune_id
    )[0]
    assert day_requests == 1
    verified = await served.http.get(
        "/v1/audit/verify",
        params={"organization_id": str(served.commune_id)},
        headers=served.operator.headers,
    )
    assert verified.json()["valid"] is True
    await _pooled_connections_as_sessions_expect_them(served.engine)


async def test_a_request_refused_for_its_quota_holds_nothing(served: Served) -> None:
    """The reservation that does not fit is rolled back with its transaction: the next
    request finds the quota as the first left it."""
    await served.quota(1)
    first = await served.http.post(
        "/v1/chat/completions", json=chat_body(), headers=served.agent.headers
    )
    assert first.status_code == 200, first.text
    for _ in range(3):
        refused = await served.http.post(
            "/v1/chat/completions", json=chat_body(), headers=served.agent.headers
        )
        assert_openai_error(refused, 429, "quota_exceeded")
        assert served.held() == (0, 0)
    (day_requests,) = served.admin(
        "SELECT day_requests FROM quota_ledger WHERE organization_id = %s", served.commune_id
    )[0]
    assert day_requests == 1
    await _pooled_connections_as_sessions_expect_them(served.engine)


async def test_refused_keys_organisations_and_bodies_leave_the_pool_as_they_found_it(
    served: Served,
) -> None:
    """A key revoked (401), an organisation suspended (403), a body the endpoint refuses
    (400): each refusal gives the connection back, nothing held; the requests after them
    are served."""
    unknown = {"Authorization": "Bearer plm_" + "x" * 43}
    assert_openai_error(
        await served.http.post("/v1/chat/completions", json=chat_body(), headers=unknown),
        401,
        "unauthenticated",
    )
    bad = await served.http.post(
        "/v1/chat/completions", json={"model": 3, "messages": []}, headers=served.agent.headers
    )
    assert 400 <= bad.status_code < 500
    assert bad.status_code not in (401, 403)
    suspended = await served.http.patch(
        f"/v1/admin/organizations/{served.commune_id}",
        json={"status": "suspended"},
        headers=served.operator.headers,
    )
    assert suspended.status_code == 200, suspended.text
    assert_openai_error(
        await served.http.post(
            "/v1/chat/completions", json=chat_body(), headers=served.agent.headers
        ),
        403,
        "organization_suspended",
    )
    revoked = await served.http.delete(
        f"/v1/admin/api-keys/{served.neighbour.id}", headers=served.operator.headers
    )
    assert revoked.status_code == 204, revoked.text
    assert_openai_error(
        await served.http.post(
            "/v1/chat/completions", json=chat_body(), headers=served.neighbour.headers
        ),
        401,
        "unauthenticated",
    )
    assert served.held() == (0, 0)
    await _pooled_connections_as_sessions_expect_them(served.engine)
    models = await served.http.get("/v1/models", headers=served.epci_admin.headers)
    assert models.status_code == 200, models.text


async def test_a_key_that_reserves_nothing_has_its_use_recorded(served: Served) -> None:
    """GET /v1/models authenticates the same way and reserves nothing: the lookup, a
    transaction of its own, records the key's last use."""
    (before,) = served.admin(
        "SELECT last_used_at FROM api_keys WHERE id = %s", served.epci_admin.id
    )[0]
    assert before is None
    models = await served.http.get("/v1/models", headers=served.epci_admin.headers)
    assert models.status_code == 200, models.text
    (after,) = served.admin(
        "SELECT last_used_at FROM api_keys WHERE id = %s", served.epci_admin.id
    )[0]
    assert after is not None
    await _pooled_connections_as_sessions_expect_them(served.engine)


async def test_the_connection_a_commune_used_shows_its_neighbour_only_its_own_rows(
    served: Served,
) -> None:
    """A draft's lookup and reservation on the pool's connection, then the neighbouring commune's
    requests, through sessions, on the same connection: they see their own drafts, none of
    the first commune's."""
    created = await served.http.post("/v1/drafts", json=ARTICLE, headers=served.agent.headers)
    assert created.status_code == 201, created.text
    mine = await served.http.get("/v1/drafts", headers=served.agent.headers)
    theirs = await served.http.get("/v1/drafts", headers=served.neighbour.headers)
    assert mine.status_code == theirs.status_code == 200, (mine.text, theirs.text)
    assert [d["id"] for d in mine.json()["items"]] == [created.json()["id"]]
    assert theirs.json()["items"] == []


async def test_a_connection_the_database_closed_is_replaced_before_the_lookup(
    served: Served,
) -> None:
    """The pool's connections killed between two requests (a restart, a failover): the
    next request is served — its key's lookup, sent on a connection the pool did not check
    (the lookup is the check), is sent again on one it checks."""
    first = await served.http.post(
        "/v1/chat/completions", json=chat_body(), headers=served.agent.headers
    )
    assert first.status_code == 200, first.text
    served.kill_connections()
    again = await served.http.post(
        "/v1/chat/completions", json=chat_body(), headers=served.agent.headers
    )
    assert again.status_code == 200, again.text
    assert served.held() == (0, 0)
    # And through a session: the pool checks what it hands out.
    served.kill_connections()
    drafts = await served.http.get("/v1/drafts", headers=served.agent.headers)
    assert drafts.status_code == 200, drafts.text


async def test_the_lookup_without_a_session_finds_what_the_sessions_lookup_finds(
    served: Served,
) -> None:
    """The same key, chain and communes, typed the same (enumerations, policies), for an
    EPCI's tenant admin (whose communes are its scope) and a commune's agent."""
    settings = make_settings(served.admin_url)
    candidates = hashers(settings)
    for key in (served.epci_admin, served.agent):
        hashes = [h.hash(key.secret) for h in candidates]
        async with create_session_factory(served.engine)() as session, session.begin():
            expected = await ApiKeyRepository(session, TenantScope.everything()).lookup(
                hashes, candidates[0].version
            )
        async with pooled_driver_connection(served.engine) as driver:
            found = await lookup_alone(driver, served.engine.dialect, hashes, candidates[0].version)
        assert expected is not None
        assert found is not None
        columns = [c.key for c in found.key.__table__.columns if c.key != "secret_hash"]
        assert {c: getattr(found.key, c) for c in columns} == {
            c: getattr(expected.key, c) for c in columns
        }
        assert type(found.key.role) is type(expected.key.role)
        assert [(o.id, o.kind, o.status, o.policy, o.name) for o in found.chain] == [
            (o.id, o.kind, o.status, o.policy, o.name) for o in expected.chain
        ]
        assert found.children == expected.children
    assert found.children == []
