"""Plume as production runs it: the migrations applied by a role that owns the database but
is no superuser, the service logged in as a role that owns nothing (a member of plume_app,
no superuser), and row-level security forced on every tenant table, so that the owner is
subject to it too.

A database of its own, built by those two throw-away roles: the test suite's other
databases are migrated by a superuser, who bypasses row-level security whatever it says.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import psycopg
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from psycopg import sql
from pydantic import SecretStr
from sqlalchemy import make_url

from plume import cli
from plume.app import create_app
from plume.config import Settings
from plume.db import create_engine, create_session_factory, system_sessions
from plume.drafting.repository import SyntheseJobQueue
from plume.runtime.migrations import upgrade
from tests.identity.helpers import PUBLIC_URL, csrf, fresh_email, sign_in
from tests.identity.provider import running_provider
from tests.support.chat import chat_body
from tests.support.clients import bearer, running
from tests.support.database import DatabaseServer
from tests.support.factories import fresh_insee, fresh_siren
from tests.support.problems import assert_problem
from tests.support.providers import group, offline, router_for
from tests.support.quotas import ARTICLE
from tests.support.settings import make_settings

TENANT_TABLES = {
    "organizations",
    "api_keys",
    "oauth_clients",
    "drafts",
    "idempotency_keys",
    "quotas",
    "quota_ledger",
    "quota_reservations",
    "usage_records",
    "audit_entries",
    "audit_heads",
    "audit_client_addresses",
    "agents",
    "agent_sessions",
    # The operator's, no tenant's: only the system's scope reads or writes it.
    "default_quotas",
}


@dataclass(frozen=True)
class Owned:
    """A database migrated by `owner`, served by `service`; `operator_key` from `plume
    bootstrap`, run as the service."""

    owner: str
    service: str
    owner_url: str
    service_url: str
    operator_key: str

    def libpq(self, url: str) -> str:
        return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _url(admin_url: str, user: str, password: str, database: str) -> str:
    url = make_url(admin_url).set(
        drivername="postgresql+psycopg", username=user, password=password, database=database
    )
    return url.render_as_string(hide_password=False)


def _cli(settings: Settings, *argv: str) -> str:
    """`plume <argv>` run in-process, in a thread of its own (it runs its own event loop);
    its standard output."""

    def run() -> str:
        args = cli.build_parser().parse_args(list(argv))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            args.handler(settings, args)
        return out.getvalue()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(run).result()


@pytest.fixture(scope="module")
def owned(database_server: DatabaseServer) -> Iterator[Owned]:
    suffix = uuid.uuid4().hex[:10]
    owner, service, name = (
        f"plume_owner_{suffix}",
        f"plume_service_{suffix}",
        f"plume_owned_{suffix}",
    )
    password = secrets.token_urlsafe(18)
    admin_url = database_server.admin_url
    with psycopg.connect(admin_url, autocommit=True) as admin:
        # The owner may create roles (the first migration creates plume_app if it is
        # missing, and grants it to itself), nothing more.
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD {}").format(
                sql.Identifier(owner), sql.Literal(password)
            )
        )
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(service), sql.Literal(password)
            )
        )
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(owner)
            )
        )
    try:
        owner_url = _url(admin_url, owner, password, name)
        service_url = _url(admin_url, service, password, name)
        upgrade(owner_url)
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("GRANT plume_app TO {}").format(sql.Identifier(service)))
        # The key alone on its line (the last: logs may come first here).
        operator_key = _cli(make_settings(service_url), "bootstrap").strip().splitlines()[-1]
        yield Owned(owner, service, owner_url, service_url, operator_key)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            for role in (service, owner):
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


Statement = str | tuple[str, tuple[object, ...]]


async def _rows(url: str, *statements: Statement) -> list[object]:
    """The first value of the first row of each statement (a string, or a string and its
    parameters), None if it has none; in one session."""
    values: list[object] = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        for statement in statements:
            query, parameters = statement if isinstance(statement, tuple) else (statement, ())
            cursor = await connection.execute(query, parameters)
            row = await cursor.fetchone() if cursor.description else None
            values.append(row[0] if row else None)
    return values


async def test_every_tenant_table_forces_row_level_security_and_the_service_owns_nothing(
    owned: Owned,
) -> None:
    async with await psycopg.AsyncConnection.connect(owned.libpq(owned.service_url)) as db:
        forced = await (
            await db.execute(
                "SELECT c.relname FROM pg_class AS c"
                " WHERE c.relnamespace = 'public'::regnamespace"
                " AND c.relrowsecurity AND c.relforcerowsecurity"
            )
        ).fetchall()
        assert {name for (name,) in forced} == TENANT_TABLES
        role = await (
            await db.execute(
                "SELECT r.rolsuper, r.rolbypassrls,"
                " (SELECT count(*) FROM pg_class AS c WHERE c.relowner = r.oid),"
                " (SELECT count(*) FROM pg_proc AS p WHERE p.proowner = r.oid),"
                " pg_has_role(r.oid, 'plume_app', 'MEMBER')"
                " FROM pg_roles AS r WHERE r.rolname = current_user"
            )
        ).fetchone()
        assert role == (False, False, 0, 0, True)
        owner = await (
            await db.execute(
                "SELECT r.rolname, r.rolsuper FROM pg_class AS c"
                " JOIN pg_roles AS r ON r.oid = c.relowner WHERE c.relname = 'drafts'"
            )
        ).fetchone()
        assert owner == (owned.owner, False)


@pytest.fixture(scope="module")
def app(owned: Owned) -> FastAPI:
    router = router_for(group("standard", offline(), default=True))
    return create_app(make_settings(owned.service_url), provider_router=router)


@pytest.fixture(scope="module")
async def http(app: FastAPI) -> AsyncIterator[AsyncClient]:
    """The service, as `plume serve` runs it (its lifespan builds its engine and starts its
    background work: the job worker, the sweeper, the gauges), logged in as the role that
    owns nothing."""
    async with running(app) as client:
        yield client


@dataclass(frozen=True)
class Tenants:
    epci: str
    commune: str
    commune_slug: str
    other: str
    epci_admin: dict[str, str]
    agent: dict[str, str]
    agent_id: str
    other_agent: dict[str, str]


async def _tenants(http: AsyncClient, owned: Owned) -> Tenants:
    """An EPCI with a commune and a daily quota split between them, and another commune;
    their keys. All through the API, as the operator and the EPCI's admin."""
    operator = bearer(owned.operator_key)

    async def created(path: str, body: object, headers: dict[str, str]) -> dict[str, str]:
        response = await http.post(path, json=body, headers=headers)
        assert response.status_code == 201, response.text
        answer: dict[str, str] = response.json()
        return answer

    epci = await created(
        "/v1/admin/organizations",
        {"kind": "epci", "name": "CC du test forcé", "siren": fresh_siren()},
        operator,
    )
    commune = await created(
        "/v1/admin/organizations",
        {"kind": "commune", "name": "Forcée", "insee_code": fresh_insee(), "parent_id": epci["id"]},
        operator,
    )
    other = await created(
        "/v1/admin/organizations",
        {"kind": "commune", "name": "Voisine", "insee_code": fresh_insee()},
        operator,
    )
    day = {"metric": "requests", "period": "day"}
    quotas = await http.put(
        f"/v1/admin/organizations/{epci['id']}/quotas",
        json=[{**day, "limit": 10}],
        headers=operator,
    )
    assert quotas.status_code == 200, quotas.text
    epci_admin = bearer(
        (
            await created(
                f"/v1/admin/organizations/{epci['id']}/api-keys",
                {"name": "admin", "role": "tenant_admin"},
                operator,
            )
        )["key"]
    )
    agent = await created(
        f"/v1/organization/api-keys?organization_id={commune['id']}",
        {"name": "agent", "role": "agent"},
        epci_admin,
    )
    other_agent = await created(
        f"/v1/admin/organizations/{other['id']}/api-keys",
        {"name": "agent", "role": "agent"},
        operator,
    )
    split = f"/v1/quotas?organization_id={commune['id']}"
    over = await http.put(split, json=[{**day, "limit": 11}], headers=epci_admin)
    assert_problem(over, 422, "invalid_request")
    within = await http.put(split, json=[{**day, "limit": 4}], headers=epci_admin)
    assert within.status_code == 200, within.text
    return Tenants(
        epci["id"],
        commune["id"],
        commune["slug"],
        other["id"],
        epci_admin,
        bearer(agent["key"]),
        agent["id"],
        bearer(other_agent["key"]),
    )


async def test_a_full_request_flow_as_a_role_that_owns_nothing(
    owned: Owned, app: FastAPI, http: AsyncClient
) -> None:
    assert (await http.get("/readyz")).status_code == 200
    tenants = await _tenants(http, owned)

    draft = await http.post("/v1/drafts", json=ARTICLE, headers=tenants.agent)
    assert draft.status_code == 201, draft.text
    draft_id = draft.json()["id"]
    chat = await http.post("/v1/chat/completions", json=chat_body(), headers=tenants.agent)
    assert chat.status_code == 200, chat.text
    assert chat.headers["RateLimit-Remaining"] == "2"  # 4 for the commune, 2 used
    assert (await http.get(f"/v1/drafts/{draft_id}", headers=tenants.agent)).status_code == 200

    # Another tenant finds nothing of it.
    assert_problem(
        await http.get(f"/v1/drafts/{draft_id}", headers=tenants.other_agent), 404, "not_found"
    )
    listed = await http.get("/v1/drafts", headers=tenants.other_agent)
    assert listed.status_code == 200
    assert listed.json()["items"] == []

    # The EPCI's admin reads its commune's trail, usage and quotas.
    query = f"organization_id={tenants.commune}"
    verified = await http.get(f"/v1/audit/verify?{query}", headers=tenants.epci_admin)
    assert verified.json()["valid"] is True, verified.text
    assert verified.json()["checked"] >= 2
    usage = await http.get(f"/v1/usage?{query}", headers=tenants.epci_admin)
    assert usage.json()["total"]["requests"] == 2, usage.text

    # Suspension (the operator's) and revocation (the EPCI admin's) take effect at once.
    operator = bearer(owned.operator_key)
    suspended = await http.patch(
        f"/v1/admin/organizations/{tenants.other}", json={"status": "suspended"}, headers=operator
    )
    assert suspended.status_code == 200, suspended.text
    assert_problem(
        await http.get("/v1/organization", headers=tenants.other_agent),
        403,
        "organization_suspended",
    )
    revoked = await http.delete(
        f"/v1/organization/api-keys/{tenants.agent_id}", headers=tenants.epci_admin
    )
    assert revoked.status_code == 204, revoked.text
    assert_problem(
        await http.get("/v1/organization", headers=tenants.agent), 401, "unauthenticated"
    )

    # Every process's background work: the sweep and the quota gauges (the system's scope).
    assert await app.state.quota_sweeper.run_once() == 0
    await app.state.quota_gauges.refresh()
    gauges = [
        line
        for line in (await http.get("/metrics")).text.splitlines()
        if line.startswith("plume_quota_used_ratio{")
    ]
    assert any(f'organization="{tenants.commune_slug}"' in line for line in gauges), gauges


async def test_connected_as_the_service_nothing_is_seen_outside_a_scope(
    owned: Owned, http: AsyncClient
) -> None:
    """What any statement of the service's sees before it enters a tenant context, and
    after `RESET ROLE` undoes one: nothing but its scope (the login role is subject to
    row-level security as plume_app is)."""
    tenants = await _tenants(http, owned)
    assert (await http.post("/v1/drafts", json=ARTICLE, headers=tenants.agent)).status_code == 201
    url = owned.libpq(owned.service_url)
    assert await _rows(
        url,
        "SELECT count(*) FROM drafts",
        "SELECT count(*) FROM organizations",
        "SELECT count(*) FROM api_keys",
        "SELECT count(*) FROM audit_entries",
    ) == [0, 0, 0, 0]
    in_other_scope = await _rows(
        url,
        "BEGIN",
        "SET LOCAL ROLE plume_app",
        ("SELECT set_config('plume.organizations', %s, true)", (tenants.other,)),
        ("SELECT count(*) FROM drafts WHERE organization_id = %s", (tenants.commune,)),
        "RESET ROLE",
        ("SELECT count(*) FROM drafts WHERE organization_id = %s", (tenants.commune,)),
        ("SELECT count(*) FROM drafts WHERE organization_id <> %s", (tenants.other,)),
        "ROLLBACK",
    )
    assert in_other_scope[3] == in_other_scope[5] == in_other_scope[6] == 0
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        await _rows(url, "SELECT secret_hash FROM api_keys")


async def test_default_quotas_are_the_systems_alone_as_the_service_runs(
    owned: Owned, http: AsyncClient
) -> None:
    """The operator sets default quotas and a new commune gets them, as the role that owns
    nothing; a tenant's scope neither sees nor writes them, nor does any role update them."""
    operator = bearer(owned.operator_key)
    defaults = [{"kind": "commune", "metric": "tokens", "period": "month", "limit": 5000}]
    try:
        response = await http.put("/v1/admin/default-quotas", json=defaults, headers=operator)
        assert response.status_code == 200, response.text
        created = await http.post(
            "/v1/admin/organizations",
            json={"kind": "commune", "name": "Par défaut", "insee_code": fresh_insee()},
            headers=operator,
        )
        assert created.status_code == 201, created.text
        commune = created.json()["id"]
        quotas = await http.get(f"/v1/admin/organizations/{commune}/quotas", headers=operator)
        assert [(q["metric"], q["limit"]) for q in quotas.json()["items"]] == [("tokens", 5000)]

        url = owned.libpq(owned.service_url)
        seen = await _rows(
            url,
            "SELECT count(*) FROM default_quotas",
            "BEGIN",
            "SET LOCAL ROLE plume_app",
            ("SELECT set_config('plume.organizations', %s, true)", (commune,)),
            "SELECT count(*) FROM default_quotas",
            "SELECT set_config('plume.all_organizations', 'on', true)",
            "SELECT count(*) FROM default_quotas",
            "ROLLBACK",
        )
        assert (seen[0], seen[4], seen[6]) == (0, 0, 1)
        insert = (
            'INSERT INTO default_quotas (id, kind, metric, period, "limit")'
            " VALUES (gen_random_uuid(), 'epci', 'requests', 'day', 1)"
        )
        tenant = [
            "BEGIN",
            "SET LOCAL ROLE plume_app",
            ("SELECT set_config('plume.organizations', %s, true)", (commune,)),
        ]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await _rows(url, *tenant, insert)
        system = ["BEGIN", "SET LOCAL ROLE plume_app"]
        system.append("SELECT set_config('plume.all_organizations', 'on', true)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await _rows(url, *system, 'UPDATE default_quotas SET "limit" = 1')
    finally:
        cleared = await http.put("/v1/admin/default-quotas", json=[], headers=operator)
        assert cleared.status_code == 200, cleared.text


async def test_the_owner_too_sees_only_the_scope_it_enters(owned: Owned, http: AsyncClient) -> None:
    tenants = await _tenants(http, owned)
    assert (await http.post("/v1/drafts", json=ARTICLE, headers=tenants.agent)).status_code == 201
    url = owned.libpq(owned.owner_url)
    assert await _rows(url, "SELECT count(*) FROM drafts", "SELECT count(*) FROM api_keys") == [
        0,
        0,
    ]
    scoped = await _rows(
        url,
        "BEGIN",
        ("SELECT set_config('plume.organizations', %s, true)", (tenants.commune,)),
        "SELECT count(DISTINCT organization_id) FROM drafts",
        "SELECT set_config('plume.all_organizations', 'on', true)",
        ("SELECT count(*) FROM organizations WHERE id = %s", (tenants.other,)),
        "ROLLBACK",
    )
    assert scoped[2:5] == [1, "on", 1]


async def test_the_job_queue_works_in_the_systems_scope_and_only_there(
    owned: Owned, app: FastAPI, http: AsyncClient
) -> None:
    # This test claims the job itself: the service's own worker stays out of the way.
    await app.state.synthese_worker.stop()
    tenants = await _tenants(http, owned)
    draft = await http.post("/v1/drafts", json=ARTICLE, headers=tenants.agent)
    draft_id = uuid.UUID(draft.json()["id"])
    owner = owned.libpq(owned.owner_url)
    everything = "SELECT set_config('plume.all_organizations', 'on', false)"
    pending = "UPDATE drafts SET status = %s, locked_until = NULL WHERE id = %s"
    await _rows(owner, everything, (pending, ("processing", draft_id)))
    engine = create_engine(owned.service_url, pool_size=1)
    try:
        factory = create_session_factory(engine)
        async with factory() as session, session.begin():
            assert await SyntheseJobQueue(session).claim(timedelta(minutes=5)) is None
        async with system_sessions(factory)() as session, session.begin():
            claimed = await SyntheseJobQueue(session).claim(timedelta(minutes=5))
        assert claimed is not None
        assert (claimed.draft_id, claimed.organization_id) == (draft_id, uuid.UUID(tenants.commune))
    finally:
        await engine.dispose()
        await _rows(owner, everything, (pending, ("draft", draft_id)))


async def test_only_the_owner_purges_the_audit_trail(owned: Owned, http: AsyncClient) -> None:
    tenants = await _tenants(http, owned)
    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    with pytest.raises(Exception, match="permission denied"):
        _cli(make_settings(owned.service_url), "audit", "purge", "--before", tomorrow)
    purged = _cli(make_settings(owned.owner_url), "audit", "purge", "--before", tomorrow)
    assert "entries purged" in purged, purged
    # What remains (the purge's checkpoints) still verifies.
    verified = await http.get(
        f"/v1/audit/verify?organization_id={tenants.commune}", headers=tenants.epci_admin
    )
    assert verified.json()["valid"] is True, verified.text


async def test_an_agent_signs_in_and_works_as_a_role_that_owns_nothing(owned: Owned) -> None:
    """ProConnect's sign-in as production runs it: the lookups through plume_definer's
    functions, the binding and the session as the application role, the cookie path on
    every request, and a suspension that takes effect at once."""
    operator = bearer(owned.operator_key)
    with running_provider() as provider:
        settings = make_settings(
            owned.service_url,
            public_url=PUBLIC_URL,
            oidc_issuer=provider.issuer,
            oidc_client_id="plume-test",
            oidc_client_secret=SecretStr("plume-test-client-secret"),
            oidc_scopes="openid email profile given_name usual_name siret",
        )
        app = create_app(settings, provider_router=router_for(group("standard", offline())))
        transport = ASGITransport(app=app, raise_app_exceptions=False)
        async with (
            app.router.lifespan_context(app),
            AsyncClient(transport=transport, base_url=PUBLIC_URL) as browser,
        ):
            commune = await browser.post(
                "/v1/admin/organizations",
                json={"kind": "commune", "name": "Connectée", "insee_code": fresh_insee()},
                headers=operator,
            )
            assert commune.status_code == 201, commune.text
            commune_id = commune.json()["id"]
            email = fresh_email()
            invitation = await browser.post(
                "/v1/organization/agents",
                params={"organization_id": commune_id},
                json={"email": email, "role": "agent", "title": "Maire"},
                headers=operator,
            )
            assert invitation.status_code == 201, invitation.text

            signed_in = await sign_in(browser, provider, email)
            assert signed_in.status_code == 302, signed_in.text
            me = await browser.get("/v1/me")
            assert me.status_code == 200, me.text
            assert me.json()["organization"]["id"] == commune_id
            draft = await browser.post("/v1/drafts", json=ARTICLE, headers=csrf(browser))
            assert draft.status_code == 201, draft.text
            assert (await browser.get("/v1/me/sessions")).json()[0]["current"] is True

            suspended = await browser.patch(
                f"/v1/organization/agents/{invitation.json()['id']}",
                json={"status": "suspended"},
                headers=operator,
            )
            assert suspended.status_code == 200, suspended.text
            assert_problem(await browser.get("/v1/me"), 401, "unauthenticated")
