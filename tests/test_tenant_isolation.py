"""Cross-tenant isolation: every route, acted on by another tenant, and row-level security.

Tenant A is a commune attached to the operator (`commune_a`) and an EPCI (`epci_a`) with two
communes (`a1`, `a2`); tenant B is another commune (`commune_b`) and another EPCI (`epci_b`)
with its commune (`b1`). B's keys are pointed at A's resources on every route: the answer
is 404 exactly as for a resource that does not exist (never 403, never the data). Operator
routes refuse every non-operator key with 403 `forbidden`.

`ROUTES` lists every (method, path) the application serves; a meta-test fails when a route
appears that this suite does not cover. The OpenAI-compatible routes answer errors in
OpenAI's shape rather than as problem details.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from httpx import AsyncClient, Response
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from plume.db import APP_ROLE, TenantScope, enter_tenant_context
from plume.models import (
    Agent,
    AgentRole,
    AgentStatus,
    ApiKey,
    OAuthClient,
    Organization,
    OrganizationStatus,
)
from tests.support.clients import AppFactory, client_for
from tests.support.database import reset_tenant_context
from tests.support.factories import Factory, Key, fresh_insee
from tests.support.problems import assert_openai_error, assert_problem
from tests.support.providers import group, offline, router_for

# --------------------------------------------------------------------------------------
# The routes this suite covers, and who may call them.
# --------------------------------------------------------------------------------------

PUBLIC = "public"  # no key
ANY_KEY = "any_key"  # every role, its own organisation
TENANT_ADMIN = "tenant_admin"  # tenant_admin (and operator_admin)
OPERATOR = "operator"  # operator_admin only
CLIENT = "client"  # no key: an OAuth2 client's own authentication (RFC 6749's errors)
SIGN_IN = "sign_in"  # the browser's sign-in (ProConnect): no key, no tenant
# The agents' pages (/app): a signed-in agent's session only, never a key (tests/workspace
# has their cross-tenant tests; here, keys are refused and nothing of a tenant shows).
WORKSPACE = "workspace"

ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    # Operators protect it with PLUME_METRICS_TOKEN; its labels hold slugs, never ids or names.
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/v1/organization"): ANY_KEY,
    ("GET", "/v1/organization/processing"): ANY_KEY,
    ("GET", "/v1/organization/api-keys"): TENANT_ADMIN,
    ("POST", "/v1/organization/api-keys"): TENANT_ADMIN,
    ("DELETE", "/v1/organization/api-keys/{api_key_id}"): TENANT_ADMIN,
    ("GET", "/v1/admin/organizations"): OPERATOR,
    ("POST", "/v1/admin/organizations"): OPERATOR,
    ("GET", "/v1/admin/organizations/{organization_id}"): OPERATOR,
    ("PATCH", "/v1/admin/organizations/{organization_id}"): OPERATOR,
    ("GET", "/v1/admin/organizations/{organization_id}/api-keys"): OPERATOR,
    ("POST", "/v1/admin/organizations/{organization_id}/api-keys"): OPERATOR,
    ("DELETE", "/v1/admin/api-keys/{api_key_id}"): OPERATOR,
    ("GET", "/v1/admin/organizations/{organization_id}/quotas"): OPERATOR,
    ("PUT", "/v1/admin/organizations/{organization_id}/quotas"): OPERATOR,
    ("GET", "/v1/admin/default-quotas"): OPERATOR,
    ("PUT", "/v1/admin/default-quotas"): OPERATOR,
    ("GET", "/v1/quotas"): ANY_KEY,
    ("PUT", "/v1/quotas"): TENANT_ADMIN,
    ("GET", "/v1/usage"): TENANT_ADMIN,
    ("GET", "/v1/admin/usage"): OPERATOR,
    ("GET", "/v1/audit"): TENANT_ADMIN,
    ("GET", "/v1/audit/export"): TENANT_ADMIN,
    ("GET", "/v1/audit/verify"): TENANT_ADMIN,
    ("GET", "/v1/audit/head"): TENANT_ADMIN,
    # Receipts are checked with it by anyone, without a key.
    ("GET", "/v1/audit/public-key"): PUBLIC,
    ("GET", "/v1/models"): ANY_KEY,
    ("POST", "/v1/chat/completions"): ANY_KEY,
    ("POST", "/v1/drafts"): ANY_KEY,
    ("GET", "/v1/drafts"): ANY_KEY,
    ("GET", "/v1/drafts/{draft_id}"): ANY_KEY,
    ("POST", "/v1/drafts/{draft_id}/review"): ANY_KEY,
    ("GET", "/v1/drafts/{draft_id}/export"): ANY_KEY,
    ("DELETE", "/v1/drafts/{draft_id}"): ANY_KEY,
    ("PATCH", "/v1/drafts/{draft_id}"): ANY_KEY,
    ("GET", "/v1/me"): ANY_KEY,
    ("GET", "/v1/organization/oauth-clients"): TENANT_ADMIN,
    ("POST", "/v1/organization/oauth-clients"): TENANT_ADMIN,
    ("DELETE", "/v1/organization/oauth-clients/{oauth_client_id}"): TENANT_ADMIN,
    ("GET", "/v1/admin/organizations/{organization_id}/oauth-clients"): OPERATOR,
    ("POST", "/v1/admin/organizations/{organization_id}/oauth-clients"): OPERATOR,
    ("DELETE", "/v1/admin/oauth-clients/{oauth_client_id}"): OPERATOR,
    ("POST", "/oauth/token"): CLIENT,
    # The keys that verify access tokens and the server's metadata: public by design.
    ("GET", "/oauth/jwks.json"): PUBLIC,
    ("GET", "/.well-known/oauth-authorization-server"): PUBLIC,
    ("GET", "/v1/organization/agents"): TENANT_ADMIN,
    ("POST", "/v1/organization/agents"): TENANT_ADMIN,
    ("PATCH", "/v1/organization/agents/{agent_id}"): TENANT_ADMIN,
    ("GET", "/v1/me/sessions"): ANY_KEY,
    ("DELETE", "/v1/me/sessions/{session_id}"): ANY_KEY,
    ("GET", "/auth/login"): SIGN_IN,
    ("GET", "/auth/callback"): SIGN_IN,
    ("POST", "/auth/logout"): SIGN_IN,
    ("GET", "/auth/logged-out"): SIGN_IN,
    ("GET", "/app"): WORKSPACE,
    ("GET", "/app/static/{name}"): WORKSPACE,
    ("GET", "/app/rediger/{slug}"): WORKSPACE,
    ("POST", "/app/rediger/{slug}"): WORKSPACE,
    ("POST", "/app/rediger/{slug}/flux"): WORKSPACE,
    ("GET", "/app/brouillons/{draft_id}"): WORKSPACE,
    ("GET", "/app/brouillons/{draft_id}/avancement"): WORKSPACE,
    ("POST", "/app/brouillons/{draft_id}/relecture"): WORKSPACE,
    ("POST", "/app/brouillons/{draft_id}/texte"): WORKSPACE,
    ("POST", "/app/brouillons/{draft_id}/effacer"): WORKSPACE,
    # The administration's pages (tests/workspace/test_admin_pages.py: roles, cross-tenant).
    ("GET", "/app/administration"): WORKSPACE,
    ("GET", "/app/administration/agents"): WORKSPACE,
    ("POST", "/app/administration/agents"): WORKSPACE,
    ("POST", "/app/administration/agents/{agent_id}"): WORKSPACE,
    ("GET", "/app/administration/clients"): WORKSPACE,
    ("GET", "/app/administration/cles"): WORKSPACE,
    ("POST", "/app/administration/clients"): WORKSPACE,
    ("POST", "/app/administration/cles"): WORKSPACE,
    ("POST", "/app/administration/clients/{oauth_client_id}/revoquer"): WORKSPACE,
    ("POST", "/app/administration/cles/{api_key_id}/revoquer"): WORKSPACE,
    ("GET", "/app/administration/quotas"): WORKSPACE,
    ("POST", "/app/administration/quotas/{organization_id}"): WORKSPACE,
    ("GET", "/app/administration/consommation"): WORKSPACE,
    ("GET", "/app/administration/consommation.csv"): WORKSPACE,
    ("GET", "/app/administration/journal"): WORKSPACE,
    ("GET", "/app/operateur"): WORKSPACE,
    ("POST", "/app/operateur/organisations"): WORKSPACE,
    ("GET", "/app/operateur/organisations/{organization_id}"): WORKSPACE,
    ("POST", "/app/operateur/organisations/{organization_id}/statut"): WORKSPACE,
    ("POST", "/app/operateur/organisations/{organization_id}/politique"): WORKSPACE,
    ("POST", "/app/operateur/organisations/{organization_id}/quotas"): WORKSPACE,
    ("GET", "/app/operateur/quotas-par-defaut"): WORKSPACE,
    ("POST", "/app/operateur/quotas-par-defaut"): WORKSPACE,
    ("GET", "/app/operateur/consommation"): WORKSPACE,
    ("GET", "/app/operateur/consommation.csv"): WORKSPACE,
}

# Plume's documentation (plume.web.docs), out of the OpenAPI description: no key, no tenant.
DOCUMENTATION = {
    ("GET", "/docs"): "/docs",
    ("GET", "/docs/assets/{name}"): "/docs/assets/swagger-ui.css",
    ("GET", "/problems"): "/problems",
    ("GET", "/problems/{code}"): "/problems/not_found",
}

# These answer errors in OpenAI's shape, `{"error": {"message", "type", "code"}}`.
OPENAI_COMPATIBLE = {("GET", "/v1/models"), ("POST", "/v1/chat/completions")}

# Cross-tenant tests register the route they attack here (at import, so order-independent).
CROSS_TENANT_COVERAGE: dict[tuple[str, str], list[str]] = {}

F = TypeVar("F", bound=Callable[..., Awaitable[None]])


def covers(method: str, path: str) -> Callable[[F], F]:
    def register(test: F) -> F:
        CROSS_TENANT_COVERAGE.setdefault((method, path), []).append(test.__name__)
        return test

    return register


def routes_of(*categories: str) -> list[tuple[str, str]]:
    return [route for route, category in ROUTES.items() if category in categories]


def route_id(route: tuple[str, str]) -> str:
    return f"{route[0]} {route[1]}"


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def without_request_id(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "request_id"}


def fill(
    path: str,
    *,
    organization_id: uuid.UUID | str,
    key_id: uuid.UUID | str,
    draft_id: uuid.UUID | str | None = None,
) -> str:
    """The concrete URL of a route template; an unknown placeholder is a KeyError."""
    return path.format_map(
        {
            "organization_id": organization_id,
            "api_key_id": key_id,
            "oauth_client_id": key_id,
            "draft_id": draft_id or uuid.uuid4(),
            "agent_id": uuid.uuid4(),
            "session_id": uuid.uuid4(),
        }
    )


def body_for(method: str, path: str) -> Any:
    """A valid body for each write route, so that only authorization can refuse it."""
    if (method, path) == ("POST", "/v1/admin/organizations"):
        return {"kind": "commune", "name": "Commune intruse", "insee_code": fresh_insee()}
    if (method, path) == ("PATCH", "/v1/admin/organizations/{organization_id}"):
        return {"status": "suspended", "name": "Renommée par un intrus"}
    if method == "POST" and path.endswith("/api-keys"):
        return {"name": "Clé intruse", "role": "tenant_admin"}
    if method == "POST" and path.endswith("/oauth-clients"):
        return {"name": "Client intrus", "role": "tenant_admin"}
    if (method, path) == ("POST", "/v1/chat/completions"):
        return {"messages": [{"role": "user", "content": "Bonjour"}]}
    if (method, path) == ("POST", "/v1/drafts"):
        return dict(DRAFT_REQUEST)
    if (method, path) == ("POST", "/v1/drafts/{draft_id}/review"):
        return dict(REVIEW)
    if (method, path) == ("PATCH", "/v1/drafts/{draft_id}"):
        return dict(EDIT)
    if (method, path) == ("POST", "/v1/organization/agents"):
        return {"email": "intrus@example.fr", "role": "tenant_admin", "title": "Maire"}
    if (method, path) == ("PATCH", "/v1/organization/agents/{agent_id}"):
        return {"status": "suspended"}
    if (method, path) == ("PUT", "/v1/admin/default-quotas"):
        return [{"kind": "commune", "metric": "requests", "period": "day", "limit": 1_000_000}]
    if method == "PUT" and path.endswith("/quotas"):
        return [{"metric": "requests", "period": "day", "limit": 1_000_000}]
    return None


DRAFT_REQUEST: dict[str, Any] = {
    "kind": "arrete",
    "subject": "Interdiction du stationnement place de la Mairie les jours de marché",
    "context": "Le marché hebdomadaire se tient le samedi matin place de la Mairie.",
    "provisions": ["Le stationnement est interdit place de la Mairie le samedi de 6 h à 14 h."],
}
EDIT: dict[str, Any] = {"text": "# Arrêté réécrit par un intrus\n\nArticle 1er : rien.\n"}
REVIEW: dict[str, Any] = {
    "decision": "approved",
    "reviewer": {"name": "Intrus Anonyme", "title": "Secrétaire de mairie"},
}


async def call(
    client: AsyncClient,
    method: str,
    url: str,
    key: Key | None = None,
    *,
    json: dict[str, Any] | None = None,
    params: dict[str, str] | None = None,
) -> Response:
    return await client.request(
        method, url, headers=key.headers if key else None, json=json, params=params
    )


# --------------------------------------------------------------------------------------
# The two tenants
# --------------------------------------------------------------------------------------


@dataclass
class World:
    operator: Organization
    commune_a: Organization
    epci_a: Organization
    a1: Organization
    a2: Organization
    commune_b: Organization
    epci_b: Organization
    b1: Organization
    keys: dict[str, Key]

    def key(self, name: str) -> Key:
        return self.keys[name]

    def org(self, name: str) -> Organization:
        organization = getattr(self, name)
        assert isinstance(organization, Organization)
        return organization

    def key_ids_of(self, organization: Organization) -> set[str]:
        return {k.id for k in self.keys.values() if k.organization.id == organization.id}


KEYS = {
    "operator": ("operator", "operator_admin"),
    "commune_a.admin": ("commune_a", "tenant_admin"),
    "commune_a.agent": ("commune_a", "agent"),
    "epci_a.admin": ("epci_a", "tenant_admin"),
    "epci_a.agent": ("epci_a", "agent"),
    "a1.admin": ("a1", "tenant_admin"),
    "a1.agent": ("a1", "agent"),
    "a2.admin": ("a2", "tenant_admin"),
    "commune_b.admin": ("commune_b", "tenant_admin"),
    "commune_b.agent": ("commune_b", "agent"),
    "epci_b.admin": ("epci_b", "tenant_admin"),
    "epci_b.agent": ("epci_b", "agent"),
    "b1.admin": ("b1", "tenant_admin"),
}


@pytest.fixture
async def world(factory: Factory) -> World:
    operator = await factory.operator()
    epci_a = await factory.epci("Communauté de communes A")
    epci_b = await factory.epci("Communauté de communes B")
    orgs = {
        "operator": operator,
        "commune_a": await factory.commune("Commune A"),
        "epci_a": epci_a,
        "a1": await factory.commune("Commune A1", parent=epci_a),
        "a2": await factory.commune("Commune A2", parent=epci_a),
        "commune_b": await factory.commune("Commune B"),
        "epci_b": epci_b,
        "b1": await factory.commune("Commune B1", parent=epci_b),
    }
    keys = {name: await factory.key(orgs[org], role) for name, (org, role) in KEYS.items()}
    return World(**orgs, keys=keys)


async def key_state(db: AsyncSession) -> dict[uuid.UUID, tuple[uuid.UUID, Any]]:
    rows = await db.execute(select(ApiKey.id, ApiKey.organization_id, ApiKey.revoked_at))
    return {row.id: (row.organization_id, row.revoked_at) for row in rows}


async def organization_state(db: AsyncSession) -> dict[uuid.UUID, tuple[str, Any]]:
    rows = await db.execute(select(Organization.id, Organization.name, Organization.status))
    return {row.id: (row.name, row.status) for row in rows}


# --------------------------------------------------------------------------------------
# Meta: the suite covers every route the application serves
# --------------------------------------------------------------------------------------


def served_routes(app: FastAPI) -> set[tuple[str, str]]:
    served = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    # Routes hidden from the schema are still reachable: count them too.
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute) and route.methods:
            served |= {(method, route.path) for method in route.methods - {"HEAD", "OPTIONS"}}
    return served


def test_every_served_route_is_covered_by_this_suite(app: FastAPI) -> None:
    served = served_routes(app) - set(DOCUMENTATION)
    uncovered = served - set(ROUTES)
    assert not uncovered, (
        f"New routes not covered by the tenant-isolation suite: {sorted(uncovered)}. "
        "Add them to ROUTES and write their cross-tenant tests."
    )
    stale = set(ROUTES) - served
    assert not stale, f"ROUTES lists routes the application no longer serves: {sorted(stale)}"


def test_every_authenticated_route_has_a_cross_tenant_test() -> None:
    tenant_routes = set(routes_of(ANY_KEY, TENANT_ADMIN))
    missing = tenant_routes - set(CROSS_TENANT_COVERAGE)
    assert not missing, f"No cross-tenant test registered with @covers for {sorted(missing)}"
    unknown = set(CROSS_TENANT_COVERAGE) - set(ROUTES)
    assert not unknown, f"@covers names routes missing from ROUTES: {sorted(unknown)}"


def test_the_openapi_declares_the_roles_of_each_route(app: FastAPI) -> None:
    """Operator routes require operator_admin only; tenant key routes refuse agents."""
    paths = app.openapi()["paths"]
    for (method, path), category in ROUTES.items():
        if category in (SIGN_IN, WORKSPACE):
            assert path not in paths, path  # a browser's pages, out of the API's description
            continue
        security = paths[path][method.lower()].get("security", [])
        scopes = {
            scope for requirement in security for names in requirement.values() for scope in names
        }
        if category in (PUBLIC, CLIENT):
            assert not scopes, (method, path)
        elif category == OPERATOR:
            assert scopes == {"operator_admin"}, (method, path, scopes)
        elif category == TENANT_ADMIN:
            assert "agent" not in scopes, (method, path, scopes)
            assert "tenant_admin" in scopes, (method, path, scopes)
        else:
            assert {"agent", "tenant_admin"} <= scopes, (method, path, scopes)


# --------------------------------------------------------------------------------------
# Every route, for everyone
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", routes_of(PUBLIC), ids=route_id)
async def test_public_routes_need_no_key_and_reveal_no_tenant(
    client: AsyncClient, world: World, route: tuple[str, str]
) -> None:
    method, path = route
    response = await call(client, method, path)
    assert response.status_code == 200, response.text
    for organization in (world.commune_a, world.epci_a, world.commune_b):
        assert str(organization.id) not in response.text
        assert organization.name not in response.text


@pytest.mark.parametrize("route", sorted(DOCUMENTATION), ids=route_id)
async def test_documentation_pages_need_no_key_and_reveal_no_tenant(
    app: FastAPI, client: AsyncClient, world: World, route: tuple[str, str]
) -> None:
    assert route in served_routes(app)
    response = await client.get(DOCUMENTATION[route])
    assert response.status_code == 200, response.text
    for organization in (world.commune_a, world.epci_a, world.commune_b):
        assert str(organization.id) not in response.text
        assert organization.name not in response.text


@pytest.mark.parametrize("route", routes_of(ANY_KEY, TENANT_ADMIN, OPERATOR), ids=route_id)
async def test_every_other_route_requires_a_key(
    client: AsyncClient, route: tuple[str, str]
) -> None:
    method, path = route
    url = fill(path, organization_id=uuid.uuid4(), key_id=uuid.uuid4())
    response = await call(client, method, url, json=body_for(method, path))
    if route in OPENAI_COMPATIBLE:
        assert_openai_error(response, 401, "unauthenticated")
    else:
        assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].lower().startswith("bearer")


NON_OPERATOR_KEYS = ["commune_a.admin", "commune_a.agent", "epci_a.admin", "epci_a.agent"]


async def test_operator_routes_refuse_every_non_operator_key(
    client: AsyncClient, db: AsyncSession, world: World, subtests: pytest.Subtests
) -> None:
    """403 `forbidden` whatever the target: its own organisation or key, or another tenant's."""
    organizations_before = await organization_state(db)
    keys_before = await key_state(db)
    for method, path in routes_of(OPERATOR):
        for name in NON_OPERATOR_KEYS:
            caller = world.key(name)
            targets = {
                "own": (caller.organization.id, caller.id),
                "other tenant": (world.commune_b.id, world.key("commune_b.admin").id),
            }
            if "{" not in path:
                targets = {"none": targets["own"]}
            for target, (organization_id, key_id) in targets.items():
                with subtests.test(route=f"{method} {path}", caller=name, target=target):
                    url = fill(path, organization_id=organization_id, key_id=key_id)
                    response = await call(client, method, url, caller, json=body_for(method, path))
                    body = assert_problem(response, 403, "forbidden")
                    assert "key" not in body
                    assert world.commune_b.name not in response.text
    # Nothing was created, renamed, suspended or revoked.
    assert await organization_state(db) == organizations_before
    assert await key_state(db) == keys_before


async def test_key_management_refuses_agents(
    client: AsyncClient, db: AsyncSession, world: World, subtests: pytest.Subtests
) -> None:
    """An agent (even an EPCI's, even for its own communes) gets 403 on key management."""
    keys_before = await key_state(db)
    for method, path in routes_of(TENANT_ADMIN):
        for name, admin in [
            ("commune_a.agent", "commune_a.admin"),
            ("epci_a.agent", "epci_a.admin"),
            ("a1.agent", "a1.admin"),
        ]:
            caller = world.key(name)
            targets: list[tuple[str | None, str]] = [
                (None, caller.id),  # its own organisation, its own key
                (str(caller.organization.id), world.key(admin).id),
            ]
            if caller.organization.id == world.epci_a.id:
                targets.append((str(world.a1.id), world.key("a1.agent").id))  # its commune
            for organization_id, key_id in targets:
                params = {"organization_id": organization_id} if organization_id else None
                with subtests.test(route=f"{method} {path}", caller=name, params=params):
                    url = fill(path, organization_id=caller.organization.id, key_id=key_id)
                    response = await call(
                        client, method, url, caller, json=body_for(method, path), params=params
                    )
                    assert_problem(response, 403, "forbidden")
                    assert "items" not in response.json()
    assert await key_state(db) == keys_before


# --------------------------------------------------------------------------------------
# GET /v1/organization
# --------------------------------------------------------------------------------------


@covers("GET", "/v1/organization")
async def test_own_organization_ignores_attempts_to_name_another(
    client: AsyncClient, world: World
) -> None:
    for name in ("commune_b.admin", "commune_b.agent", "epci_b.admin", "epci_b.agent", "b1.admin"):
        caller = world.key(name)
        target = world.a1 if name.startswith("epci") else world.commune_a
        response = await client.get(
            "/v1/organization",
            params={"organization_id": str(target.id), "id": str(target.id)},
            headers={**caller.headers, "X-Organization-Id": str(target.id)},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["id"] == str(caller.organization.id), name
        assert body["name"] == caller.organization.name
        assert str(target.id) not in response.text
        assert target.name not in response.text


# --------------------------------------------------------------------------------------
# /v1/organization/api-keys, with and without ?organization_id=
# --------------------------------------------------------------------------------------

# (caller, organisation it must not reach)
FOREIGN_ORGANIZATIONS = [
    ("commune_b.admin", "commune_a"),
    ("commune_b.admin", "epci_a"),
    ("commune_b.admin", "a1"),
    ("commune_b.admin", "operator"),
    ("epci_b.admin", "a1"),  # another EPCI's commune
    ("epci_b.admin", "epci_a"),
    ("epci_b.admin", "commune_a"),
    ("epci_a.admin", "commune_a"),  # a commune that is not one of its own
    ("epci_a.admin", "b1"),
    ("epci_a.admin", "operator"),
    ("a1.admin", "epci_a"),  # its parent EPCI
    ("a1.admin", "a2"),  # a sibling commune
    ("commune_a.admin", "commune_b"),
]


@covers("GET", "/v1/organization/api-keys")
async def test_listing_another_tenants_keys_is_not_found(
    client: AsyncClient, world: World, subtests: pytest.Subtests
) -> None:
    as_if_missing: dict[str, dict[str, Any]] = {}
    for caller_name, target_name in FOREIGN_ORGANIZATIONS:
        caller, target = world.key(caller_name), world.org(target_name)
        with subtests.test(caller=caller_name, target=target_name):
            if caller_name not in as_if_missing:
                unknown = await call(
                    client,
                    "GET",
                    "/v1/organization/api-keys",
                    caller,
                    params={"organization_id": str(uuid.uuid4())},
                )
                problem = assert_problem(unknown, 404, "not_found")
                as_if_missing[caller_name] = without_request_id(problem)
            response = await call(
                client,
                "GET",
                "/v1/organization/api-keys",
                caller,
                params={"organization_id": str(target.id)},
            )
            body = assert_problem(response, 404, "not_found")
            # Exactly as if the organisation did not exist.
            assert without_request_id(body) == as_if_missing[caller_name]
            for key_id in world.key_ids_of(target):
                assert key_id not in response.text


@covers("GET", "/v1/organization/api-keys")
async def test_listing_without_organization_id_shows_only_own_keys(
    client: AsyncClient, world: World, subtests: pytest.Subtests
) -> None:
    for name in ("commune_a.admin", "commune_b.admin", "epci_a.admin", "epci_b.admin", "a1.admin"):
        caller = world.key(name)
        with subtests.test(caller=name):
            response = await call(client, "GET", "/v1/organization/api-keys", caller)
            assert response.status_code == 200, response.text
            items = response.json()["items"]
            assert {item["id"] for item in items} == world.key_ids_of(caller.organization)
            assert {item["organization_id"] for item in items} == {str(caller.organization.id)}


@covers("GET", "/v1/organization/api-keys")
async def test_epci_admin_lists_its_own_communes_keys(client: AsyncClient, world: World) -> None:
    caller = world.key("epci_a.admin")
    for commune in (world.a1, world.a2):
        response = await call(
            client,
            "GET",
            "/v1/organization/api-keys",
            caller,
            params={"organization_id": str(commune.id)},
        )
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        assert {item["id"] for item in items} == world.key_ids_of(commune)
        assert all("key" not in item for item in items)


@covers("POST", "/v1/organization/api-keys")
async def test_minting_a_key_for_another_tenant_is_not_found(
    client: AsyncClient, db: AsyncSession, world: World, subtests: pytest.Subtests
) -> None:
    keys_before = await key_state(db)
    for caller_name, target_name in FOREIGN_ORGANIZATIONS:
        caller, target = world.key(caller_name), world.org(target_name)
        with subtests.test(caller=caller_name, target=target_name):
            response = await call(
                client,
                "POST",
                "/v1/organization/api-keys",
                caller,
                json={"name": "Clé intruse", "role": "tenant_admin"},
                params={"organization_id": str(target.id)},
            )
            body = assert_problem(response, 404, "not_found")
            assert "key" not in body
    assert await key_state(db) == keys_before


@covers("POST", "/v1/organization/api-keys")
async def test_organization_cannot_be_smuggled_in_the_body(
    client: AsyncClient, db: AsyncSession, world: World
) -> None:
    keys_before = await key_state(db)
    response = await call(
        client,
        "POST",
        "/v1/organization/api-keys",
        world.key("commune_b.admin"),
        json={"name": "Clé intruse", "role": "agent", "organization_id": str(world.commune_a.id)},
    )
    body = assert_problem(response, 422, "invalid_request")
    assert "organization_id" in {error["field"] for error in body["errors"]}
    assert await key_state(db) == keys_before


@covers("POST", "/v1/organization/api-keys")
async def test_epci_admin_mints_keys_for_its_communes_only(
    client: AsyncClient, world: World
) -> None:
    caller = world.key("epci_a.admin")
    response = await call(
        client,
        "POST",
        "/v1/organization/api-keys",
        caller,
        json={"name": "Secrétariat A1", "role": "tenant_admin"},
        params={"organization_id": str(world.a1.id)},
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["organization_id"] == str(world.a1.id)
    new_key = {"Authorization": f"Bearer {created['key']}"}

    # The new key acts for the commune, and only the commune: not for the EPCI above it.
    me = await client.get("/v1/organization", headers=new_key)
    assert me.status_code == 200, me.text
    assert me.json()["id"] == str(world.a1.id)
    parent = await client.get(
        "/v1/organization/api-keys",
        headers=new_key,
        params={"organization_id": str(world.epci_a.id)},
    )
    assert_problem(parent, 404, "not_found")


# (caller, key it must not reach)
FOREIGN_KEYS = [
    ("commune_b.admin", "commune_a.agent"),
    ("commune_b.admin", "commune_a.admin"),
    ("commune_b.admin", "a1.agent"),
    ("commune_b.admin", "operator"),
    ("epci_b.admin", "a1.agent"),  # another EPCI's commune
    ("epci_b.admin", "epci_a.admin"),
    ("epci_b.admin", "commune_a.agent"),
    ("epci_a.admin", "commune_a.agent"),  # a commune that is not one of its own
    ("epci_a.admin", "b1.admin"),
    ("epci_a.admin", "operator"),
    ("a1.admin", "epci_a.admin"),  # its parent EPCI
    ("a1.admin", "epci_a.agent"),
    ("a1.admin", "a2.admin"),  # a sibling commune
]


@covers("DELETE", "/v1/organization/api-keys/{api_key_id}")
async def test_revoking_another_tenants_key_is_not_found(
    client: AsyncClient, db: AsyncSession, world: World, subtests: pytest.Subtests
) -> None:
    keys_before = await key_state(db)
    as_if_missing: dict[str, dict[str, Any]] = {}
    for caller_name, victim_name in FOREIGN_KEYS:
        caller, victim = world.key(caller_name), world.key(victim_name)
        with subtests.test(caller=caller_name, victim=victim_name):
            if caller_name not in as_if_missing:
                unknown = await call(
                    client, "DELETE", f"/v1/organization/api-keys/{uuid.uuid4()}", caller
                )
                problem = assert_problem(unknown, 404, "not_found")
                as_if_missing[caller_name] = without_request_id(problem)
            # With and without naming the victim's organisation.
            for params in (None, {"organization_id": str(victim.organization.id)}):
                response = await call(
                    client,
                    "DELETE",
                    f"/v1/organization/api-keys/{victim.id}",
                    caller,
                    params=params,
                )
                body = assert_problem(response, 404, "not_found")
                assert without_request_id(body) == as_if_missing[caller_name]
    assert await key_state(db) == keys_before
    for _, victim_name in FOREIGN_KEYS:
        still = await client.get("/v1/organization", headers=world.key(victim_name).headers)
        assert still.status_code == 200, (victim_name, still.text)


@covers("DELETE", "/v1/organization/api-keys/{api_key_id}")
async def test_epci_admin_revokes_its_communes_keys(client: AsyncClient, world: World) -> None:
    caller = world.key("epci_a.admin")
    for victim in (world.key("a1.agent"), world.key("a2.admin")):
        response = await call(client, "DELETE", f"/v1/organization/api-keys/{victim.id}", caller)
        assert response.status_code == 204, response.text
        gone = await client.get("/v1/organization", headers=victim.headers)
        assert_problem(gone, 401, "unauthenticated")
    # Its neighbours' keys are untouched.
    for name in ("a1.admin", "commune_a.agent", "b1.admin"):
        ok = await client.get("/v1/organization", headers=world.key(name).headers)
        assert ok.status_code == 200, ok.text


# --------------------------------------------------------------------------------------
# GET /v1/models and POST /v1/chat/completions
#
# These routes hold no tenant resource: the model groups are the operator's configuration,
# shared by every tenant, and a chat completion creates nothing another request could
# address (no id to read back). So there is nothing of another tenant to reach; what must
# hold is that the caller's OWN effective policy decides what it sees and may use, never
# another tenant's and never an organisation named in the request.
# --------------------------------------------------------------------------------------


@pytest.fixture
async def offline_client(make_app: AppFactory) -> AsyncIterator[AsyncClient]:
    """The offline provider (no network) deployed under each hosting class."""
    router = router_for(
        group("local-fr", offline("fr"), default=True),
        group("local-eu", offline("eu")),
        group("local-abroad", offline("non_eu")),
    )
    async with client_for(make_app(provider_router=router)) as http:
        yield http


async def set_policy(
    client: AsyncClient, world: World, organization: Organization, **policy: Any
) -> None:
    response = await call(
        client,
        "PATCH",
        f"/v1/admin/organizations/{organization.id}",
        world.key("operator"),
        json={"policy": policy},
    )
    assert response.status_code == 200, response.text


async def listed_models(
    client: AsyncClient,
    key: Key,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> list[str]:
    response = await client.get(
        "/v1/models", headers={**key.headers, **(headers or {})}, params=params
    )
    assert response.status_code == 200, response.text
    return [model["id"] for model in response.json()["data"]]


def chat_request(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Bonjour"}], **extra}


@covers("GET", "/v1/models")
@covers("POST", "/v1/chat/completions")
async def test_every_role_may_use_the_openai_compatible_routes(
    offline_client: AsyncClient, world: World, subtests: pytest.Subtests
) -> None:
    for name in KEYS:
        caller = world.key(name)
        with subtests.test(caller=name):
            assert await listed_models(offline_client, caller) == ["local-fr", "local-eu"]
            response = await call(
                offline_client,
                "POST",
                "/v1/chat/completions",
                caller,
                json=chat_request("local-fr"),
            )
            assert response.status_code == 200, response.text
            assert response.json()["choices"][0]["message"]["content"]


@covers("GET", "/v1/models")
@covers("POST", "/v1/chat/completions")
async def test_a_tenant_sees_and_uses_only_what_its_own_policy_allows(
    offline_client: AsyncClient, world: World, subtests: pytest.Subtests
) -> None:
    await set_policy(offline_client, world, world.commune_a, allowed_hosting=["fr"])
    await set_policy(offline_client, world, world.epci_a, allowed_hosting=["fr"])
    await set_policy(offline_client, world, world.commune_b, allowed_hosting=["eu"])
    await set_policy(offline_client, world, world.b1, allowed_kinds=["arrete"])
    # (caller, groups it may use, whether it may chat)
    expected = [
        ("commune_a.agent", ["local-fr"], True),
        ("a1.agent", ["local-fr"], True),  # narrowed by its EPCI
        ("epci_a.admin", ["local-fr"], True),
        ("commune_b.agent", ["local-eu"], True),
        ("epci_b.agent", ["local-fr", "local-eu"], True),  # its commune's policy is not its own
        ("b1.admin", ["local-fr", "local-eu"], False),
        ("operator", ["local-fr", "local-eu"], True),
    ]
    for name, groups, may_chat in expected:
        caller = world.key(name)
        elsewhere = world.commune_b if name.startswith(("commune_a", "a1", "epci_a")) else world.a1
        # Naming another organisation anywhere in the request changes nothing.
        smuggled = {"organization_id": str(elsewhere.id)}
        with subtests.test(caller=name):
            assert await listed_models(offline_client, caller) == groups
            assert (
                await listed_models(
                    offline_client,
                    caller,
                    params=smuggled,
                    headers={"X-Organization-Id": str(elsewhere.id)},
                )
                == groups
            )
            for model in ("local-fr", "local-eu", "local-abroad"):
                response = await call(
                    offline_client,
                    "POST",
                    "/v1/chat/completions",
                    caller,
                    json=chat_request(model, user=str(elsewhere.id), **smuggled),
                    params=smuggled,
                )
                if not may_chat:
                    assert_openai_error(response, 403, "kind_disabled")
                elif model in groups:
                    assert response.status_code == 200, response.text
                else:
                    assert_openai_error(response, 403, "hosting_not_allowed")
                assert elsewhere.name not in response.text
                assert str(elsewhere.id) not in response.text


# --------------------------------------------------------------------------------------
# Operator routes: the operator sees every tenant (the 404s above are not universal)
# --------------------------------------------------------------------------------------


@covers("GET", "/v1/admin/organizations/{organization_id}")
@covers("GET", "/v1/admin/organizations/{organization_id}/api-keys")
@covers("GET", "/v1/admin/organizations")
async def test_operator_reaches_every_tenant(client: AsyncClient, world: World) -> None:
    operator = world.key("operator")
    listing = await call(client, "GET", "/v1/admin/organizations", operator)
    assert listing.status_code == 200, listing.text
    listed = {item["id"] for item in listing.json()["items"]}
    for name in ("commune_a", "epci_a", "a1", "a2", "commune_b", "epci_b", "b1"):
        organization = world.org(name)
        assert str(organization.id) in listed
        one = await call(client, "GET", f"/v1/admin/organizations/{organization.id}", operator)
        assert one.status_code == 200, one.text
        assert one.json()["id"] == str(organization.id)
        keys = await call(
            client, "GET", f"/v1/admin/organizations/{organization.id}/api-keys", operator
        )
        assert keys.status_code == 200, keys.text
        assert {item["id"] for item in keys.json()["items"]} == world.key_ids_of(organization)


@covers("POST", "/v1/admin/organizations/{organization_id}/api-keys")
@covers("GET", "/v1/admin/organizations/{organization_id}/quotas")
@covers("PUT", "/v1/admin/organizations/{organization_id}/quotas")
@covers("DELETE", "/v1/admin/api-keys/{api_key_id}")
@covers("PATCH", "/v1/admin/organizations/{organization_id}")
@covers("POST", "/v1/admin/organizations")
async def test_operator_answers_404_for_what_does_not_exist(
    client: AsyncClient, world: World
) -> None:
    operator = world.key("operator")
    missing = uuid.uuid4()
    for method, path in routes_of(OPERATOR):
        if "{" not in path:
            continue
        url = fill(path, organization_id=missing, key_id=missing)
        response = await call(client, method, url, operator, json=body_for(method, path))
        assert_problem(response, 404, "not_found")
    # A commune under an unknown parent is refused, not attached elsewhere.
    response = await call(
        client,
        "POST",
        "/v1/admin/organizations",
        operator,
        json={
            "kind": "commune",
            "name": "Orpheline",
            "insee_code": fresh_insee(),
            "parent_id": str(missing),
        },
    )
    assert response.status_code in (404, 422), response.text
    assert response.json()["code"] in ("not_found", "invalid_request")


# --------------------------------------------------------------------------------------
# Row-level security: the database's own wall, even for a superuser connection
# --------------------------------------------------------------------------------------


async def scalars(connection: AsyncConnection, sql: str, **params: Any) -> list[Any]:
    return list((await connection.execute(text(sql), params)).scalars().all())


async def test_the_suite_connects_as_a_superuser_who_sees_every_row(
    connection: AsyncConnection, world: World
) -> None:
    """The premise of the proofs below: without the switch, everything is visible."""
    assert await connection.scalar(
        text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    )
    organizations = set(await scalars(connection, "SELECT id FROM organizations"))
    assert {world.org(name).id for name in ("commune_a", "commune_b", "a1", "b1")} <= organizations
    key_orgs = set(await scalars(connection, "SELECT organization_id FROM api_keys"))
    assert {world.commune_a.id, world.commune_b.id} <= key_orgs


async def test_rls_limits_unscoped_queries_to_a_communes_scope(
    db: AsyncSession, connection: AsyncConnection, world: World
) -> None:
    commune_a = world.commune_a
    try:
        await enter_tenant_context(db, TenantScope(frozenset({commune_a.id})))
        assert await connection.scalar(text("SELECT current_user")) == APP_ROLE
        assert await connection.scalar(
            text("SELECT rolsuper FROM pg_roles WHERE rolname = session_user")
        )
        # Deliberately unscoped queries: no WHERE clause at all.
        assert await scalars(connection, "SELECT id FROM organizations") == [commune_a.id]
        key_orgs = await scalars(connection, "SELECT organization_id FROM api_keys")
        assert set(key_orgs) == {commune_a.id}
        assert len(key_orgs) == len(world.key_ids_of(commune_a))
        # Even naming another tenant's row outright finds nothing.
        assert not await scalars(
            connection, "SELECT id FROM organizations WHERE id = :id", id=world.commune_b.id
        )
        assert not await scalars(
            connection,
            "SELECT id FROM api_keys WHERE organization_id = :id",
            id=world.commune_b.id,
        )
        # And the ORM through the same session is held to the same rows.
        orm = (await db.execute(select(Organization.id))).scalars().all()
        assert list(orm) == [commune_a.id]
    finally:
        await reset_tenant_context(connection)
    # Back to the superuser: the rows were there all along.
    assert world.commune_b.id in await scalars(connection, "SELECT id FROM organizations")


async def test_rls_gives_an_epci_admin_its_communes_and_the_operator_everything(
    db: AsyncSession, connection: AsyncConnection, world: World
) -> None:
    epci_scope = frozenset({world.epci_a.id, world.a1.id, world.a2.id})
    try:
        await enter_tenant_context(db, TenantScope(epci_scope))
        assert set(await scalars(connection, "SELECT id FROM organizations")) == epci_scope
        assert set(await scalars(connection, "SELECT organization_id FROM api_keys")) == epci_scope
    finally:
        await reset_tenant_context(connection)
    try:
        await enter_tenant_context(db, TenantScope.everything())
        visible = set(await scalars(connection, "SELECT id FROM organizations"))
        everyone = {world.org(name).id for name in ("operator", "commune_a", "epci_a", "a1")}
        assert everyone | {world.commune_b.id, world.epci_b.id, world.b1.id} <= visible
    finally:
        await reset_tenant_context(connection)


async def test_rls_shows_nothing_when_no_scope_is_set(
    db: AsyncSession, connection: AsyncConnection, world: World
) -> None:
    """A forgotten scope fails closed."""
    assert world.commune_a.id in await scalars(connection, "SELECT id FROM organizations")
    try:
        await connection.execute(text(f"SET LOCAL ROLE {APP_ROLE}"))
        assert await connection.scalar(text("SELECT current_user")) == APP_ROLE
        assert await scalars(connection, "SELECT id FROM organizations") == []
        assert await scalars(connection, "SELECT organization_id FROM api_keys") == []
        # Settings present but empty (what the end of a request leaves behind): still nothing.
        await connection.execute(
            text(
                "SELECT set_config('plume.all_organizations', '', true),"
                " set_config('plume.organizations', '', true)"
            )
        )
        assert await scalars(connection, "SELECT id FROM organizations") == []
        assert await scalars(connection, "SELECT organization_id FROM api_keys") == []
        # 'off' is not 'on'.
        await connection.execute(text("SELECT set_config('plume.all_organizations', 'off', true)"))
        assert await scalars(connection, "SELECT id FROM organizations") == []
    finally:
        await reset_tenant_context(connection)


_INSERT_KEY = (
    "INSERT INTO api_keys (id, organization_id, name, role, prefix, secret_hash,"
    " secret_version) VALUES (:id, :organization_id, 'Clé SQL', 'agent', 'plm_sqlsql',"
    " :secret_hash, 'v0')"
)


_INSERT_IDEMPOTENCY_KEY = (
    "INSERT INTO idempotency_keys (organization_id, key, request_hash, locked_until,"
    " expires_at) VALUES (:organization_id, 'clé SQL', repeat('0', 64), now(), now())"
)


def _rls_refusal(error: DBAPIError) -> bool:
    return isinstance(error.orig, psycopg.errors.InsufficientPrivilege) and (
        "row-level security" in str(error.orig)
    )


async def test_rls_with_check_refuses_writing_rows_out_of_scope(
    db: AsyncSession, connection: AsyncConnection, world: World
) -> None:
    commune_a, commune_b = world.commune_a, world.commune_b
    try:
        await enter_tenant_context(db, TenantScope(frozenset({commune_a.id})))

        # Positive control: a row inside the scope may be written (grants are in place).
        savepoint = await connection.begin_nested()
        await connection.execute(
            text(_INSERT_KEY),
            {"id": uuid.uuid4(), "organization_id": commune_a.id, "secret_hash": "a" * 64},
        )
        await savepoint.rollback()

        # An api_keys row for an organisation outside the scope is refused by WITH CHECK.
        savepoint = await connection.begin_nested()
        with pytest.raises(DBAPIError) as refused:
            await connection.execute(
                text(_INSERT_KEY),
                {"id": uuid.uuid4(), "organization_id": commune_b.id, "secret_hash": "b" * 64},
            )
        await savepoint.rollback()
        assert _rls_refusal(refused.value), refused.value

        # Moving one of its own rows to another tenant is refused too (an Idempotency-Key:
        # keys and organisations are not the application role's to update at all).
        await connection.execute(text(_INSERT_IDEMPOTENCY_KEY), {"organization_id": commune_a.id})
        savepoint = await connection.begin_nested()
        with pytest.raises(DBAPIError) as moved:
            await connection.execute(
                text("UPDATE idempotency_keys SET organization_id = :b WHERE organization_id = :a"),
                {"a": commune_a.id, "b": commune_b.id},
            )
        await savepoint.rollback()
        assert _rls_refusal(moved.value), moved.value

        # Updating another tenant's rows touches nothing: they are invisible.
        await enter_tenant_context(db, TenantScope(frozenset({commune_b.id})))
        await connection.execute(text(_INSERT_IDEMPOTENCY_KEY), {"organization_id": commune_b.id})
        await enter_tenant_context(db, TenantScope(frozenset({commune_a.id})))
        touched = await connection.execute(
            text("UPDATE idempotency_keys SET locked_until = now() WHERE organization_id = :b"),
            {"b": commune_b.id},
        )
        assert touched.rowcount == 0
        for statement in (
            "UPDATE api_keys SET revoked_at = now() WHERE organization_id = :b",
            "UPDATE organizations SET status = 'suspended' WHERE id = :b",
        ):
            savepoint = await connection.begin_nested()
            with pytest.raises(DBAPIError) as denied:
                await connection.execute(text(statement), {"b": commune_b.id})
            await savepoint.rollback()
            assert isinstance(denied.value.orig, psycopg.errors.InsufficientPrivilege), statement
    finally:
        await reset_tenant_context(connection)
    rows = await db.execute(select(ApiKey.revoked_at).where(ApiKey.organization_id == commune_b.id))
    assert all(revoked_at is None for revoked_at in rows.scalars())
    status = await db.scalar(select(Organization.status).where(Organization.id == commune_b.id))
    assert status is OrganizationStatus.ACTIVE
    count = await db.scalar(
        text("SELECT count(*) FROM api_keys WHERE organization_id = :b"), {"b": commune_b.id}
    )
    assert count == len(world.key_ids_of(commune_b))


# --------------------------------------------------------------------------------------
# What only the operator changes, and the audit chain: the application role's privileges
# --------------------------------------------------------------------------------------


async def _refused_in_savepoint(
    connection: AsyncConnection, statement: str, parameters: dict[str, Any]
) -> BaseException:
    savepoint = await connection.begin_nested()
    with pytest.raises(DBAPIError) as refused:
        await connection.execute(text(statement), parameters)
    await savepoint.rollback()
    assert refused.value.orig is not None
    return refused.value.orig


ORGANIZATION_CHANGES = {
    "status": "UPDATE organizations SET status = 'active' WHERE id = :own",
    "parent_id": "UPDATE organizations SET parent_id = :elsewhere WHERE id = :own",
    "policy": "UPDATE organizations SET policy = '{}'::jsonb WHERE id = :own",
    "name": "UPDATE organizations SET name = 'Renommée' WHERE id = :own",
    "organization_update": ("SELECT organization_update(:own, 'Renommée', 'active', '{}'::jsonb)"),
    "siret": "UPDATE organizations SET siret = '21760349400019' WHERE id = :own",
    "organization_set_siret": "SELECT organization_set_siret(:own, '21760349400019')",
}


@pytest.mark.parametrize(
    "statement", list(ORGANIZATION_CHANGES.values()), ids=list(ORGANIZATION_CHANGES)
)
async def test_a_tenants_transaction_cannot_change_its_organisation(
    db: AsyncSession, connection: AsyncConnection, world: World, statement: str
) -> None:
    """An EPCI's admin (its scope: the EPCI and its communes) can neither lift a
    suspension, widen a policy, rename, nor move one of its communes under another EPCI:
    the operator's changes, made through organization_update with the system's scope."""
    a1 = world.a1
    await connection.execute(
        text("UPDATE organizations SET status = 'suspended', policy = :policy WHERE id = :id"),
        {"id": a1.id, "policy": '{"allowed_kinds": ["arrete"]}'},
    )
    before = await organization_state(db)
    try:
        scope = TenantScope(frozenset({world.epci_a.id, world.a1.id, world.a2.id}))
        await enter_tenant_context(db, scope)
        refused = await _refused_in_savepoint(
            connection, statement, {"own": a1.id, "elsewhere": world.epci_b.id}
        )
        assert isinstance(refused, psycopg.errors.InsufficientPrivilege), refused
    finally:
        await reset_tenant_context(connection)
    assert await organization_state(db) == before
    parent = await db.scalar(select(Organization.parent_id).where(Organization.id == a1.id))
    assert parent == world.epci_a.id


async def test_the_operators_change_goes_through_organization_update(
    db: AsyncSession, connection: AsyncConnection, world: World
) -> None:
    try:
        await enter_tenant_context(db, TenantScope.everything())
        changed = await connection.scalar(
            text("SELECT organization_update(:id, 'Commune B bis', 'suspended', '{}'::jsonb)"),
            {"id": world.commune_b.id},
        )
        assert changed is True
        refused = await _refused_in_savepoint(
            connection,
            "SELECT organization_update(:id, 'Opérateur', 'suspended', '{}'::jsonb)",
            {"id": world.operator.id},
        )
        assert isinstance(refused, psycopg.errors.CheckViolation)  # never the operator
    finally:
        await reset_tenant_context(connection)
    state = (await organization_state(db))[world.commune_b.id]
    assert state == ("Commune B bis", OrganizationStatus.SUSPENDED)


CHAIN_WRITES = {
    "move the head": "UPDATE audit_heads SET seq = seq - 1 WHERE organization_id = :own",
    "plant a head": (
        "INSERT INTO audit_heads (organization_id, seq, prev_hash, hash)"
        " VALUES (:own, 1, repeat('0', 64), repeat('0', 64))"
    ),
    "forge an entry": (
        "INSERT INTO audit_entries (organization_id, seq, occurred_at, action, actor_role,"
        " body, prev_hash, hash) VALUES (:own, 1000, now(), 'audit.purge', 'system', '{}',"
        " repeat('0', 64), repeat('0', 64))"
    ),
    "remove entries": "DELETE FROM audit_entries WHERE organization_id = :own",
    "append to another chain": (
        "SELECT * FROM audit_append(:other, now(), 'test', NULL, 'system', '{}')"
    ),
}


@pytest.mark.parametrize("statement", list(CHAIN_WRITES.values()), ids=list(CHAIN_WRITES))
async def test_only_audit_append_writes_a_chain_and_only_the_callers(
    db: AsyncSession, connection: AsyncConnection, world: World, statement: str
) -> None:
    commune_a = world.commune_a
    try:
        await enter_tenant_context(db, TenantScope(frozenset({commune_a.id})))
        appended = await connection.execute(
            text("SELECT * FROM audit_append(:own, now(), 'test.append', NULL, 'system', '{}')"),
            {"own": commune_a.id},
        )
        seq, _ = appended.one()
        refused = await _refused_in_savepoint(
            connection, statement, {"own": commune_a.id, "other": world.commune_b.id}
        )
        assert isinstance(refused, psycopg.errors.InsufficientPrivilege), refused
    finally:
        await reset_tenant_context(connection)
    head = await connection.scalar(
        text("SELECT seq FROM audit_heads WHERE organization_id = :id"), {"id": commune_a.id}
    )
    assert head == seq
    assert (
        await connection.scalar(
            text("SELECT count(*) FROM audit_heads WHERE organization_id = :id"),
            {"id": world.commune_b.id},
        )
        == 0
    )


async def test_only_the_owner_purges_whatever_setting_a_session_writes(
    connection: AsyncConnection, world: World
) -> None:
    """The append-only trigger lets the table's owner (or a superuser) delete with
    plume.audit_purge set; any other role is refused, even one allowed to delete and
    bypassing row-level security."""
    deleter = f"plume_test_deleter_{uuid.uuid4().hex[:8]}"
    await connection.execute(text(f'CREATE ROLE "{deleter}" NOLOGIN BYPASSRLS'))
    await connection.execute(text(f'GRANT SELECT, DELETE ON audit_entries TO "{deleter}"'))
    await connection.execute(
        text("SELECT * FROM audit_append(:own, now(), 'test.append', NULL, 'system', '{}')"),
        {"own": world.commune_a.id},
    )
    try:
        await connection.execute(text(f'SET LOCAL ROLE "{deleter}"'))
        await connection.execute(text("SELECT set_config('plume.audit_purge', 'on', true)"))
        refused = await _refused_in_savepoint(
            connection,
            "DELETE FROM audit_entries WHERE organization_id = :own",
            {"own": world.commune_a.id},
        )
        assert isinstance(refused, psycopg.errors.InsufficientPrivilege)
        assert "append-only" in str(refused)
    finally:
        await reset_tenant_context(connection)
    # The owner (here a superuser) may.
    await connection.execute(text("SELECT set_config('plume.audit_purge', 'on', true)"))
    removed = await connection.execute(
        text("DELETE FROM audit_entries WHERE organization_id = :own"),
        {"own": world.commune_a.id},
    )
    assert removed.rowcount >= 1


# --------------------------------------------------------------------------------------
# /v1/drafts: a draft belongs to the organisation whose key asked for it
# --------------------------------------------------------------------------------------


async def create_draft(client: AsyncClient, key: Key) -> str:
    response = await call(client, "POST", "/v1/drafts", key, json=DRAFT_REQUEST)
    assert response.status_code == 201, response.text
    draft_id: str = response.json()["id"]
    return draft_id


async def listed_drafts(client: AsyncClient, key: Key, **params: str) -> set[str]:
    response = await call(client, "GET", "/v1/drafts", key, params=params or None)
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["items"]}


DRAFT_ROUTES = [
    ("GET", "/v1/drafts/{draft_id}", None),
    ("POST", "/v1/drafts/{draft_id}/review", REVIEW),
    ("GET", "/v1/drafts/{draft_id}/export?format=md", None),
    ("GET", "/v1/drafts/{draft_id}/export?format=docx", None),
    ("PATCH", "/v1/drafts/{draft_id}", EDIT),
    ("DELETE", "/v1/drafts/{draft_id}", None),
]

# (caller, organisation whose draft it must not reach)
FOREIGN_DRAFTS = [
    ("commune_b.agent", "commune_a"),
    ("commune_b.admin", "commune_a"),
    ("commune_b.admin", "a1"),
    ("epci_b.admin", "a1"),  # another EPCI's commune
    ("epci_b.agent", "epci_a"),
    ("b1.admin", "a1"),
    ("epci_a.admin", "commune_a"),  # a commune that is not one of its own
    ("a1.admin", "epci_a"),  # its parent EPCI
    ("a1.agent", "a2"),  # a sibling commune
    ("commune_a.agent", "b1"),
]


async def assert_draft_untouched(client: AsyncClient, owner: Key, draft_id: str) -> None:
    response = await call(client, "GET", f"/v1/drafts/{draft_id}", owner)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "draft"
    assert response.json()["review"] is None
    assert "intrus" not in response.json()["text"]


@covers("GET", "/v1/drafts/{draft_id}")
@covers("POST", "/v1/drafts/{draft_id}/review")
@covers("GET", "/v1/drafts/{draft_id}/export")
@covers("DELETE", "/v1/drafts/{draft_id}")
@covers("PATCH", "/v1/drafts/{draft_id}")
async def test_another_tenants_draft_is_not_found(
    client: AsyncClient, world: World, subtests: pytest.Subtests
) -> None:
    owners = {
        "commune_a": world.key("commune_a.agent"),
        "a1": world.key("a1.agent"),
        "a2": world.key("a2.admin"),
        "epci_a": world.key("epci_a.agent"),
        "b1": world.key("b1.admin"),
    }
    drafts = {name: await create_draft(client, key) for name, key in owners.items()}
    for caller_name, target in FOREIGN_DRAFTS:
        caller = world.key(caller_name)
        for method, template, body in DRAFT_ROUTES:
            with subtests.test(caller=caller_name, target=target, route=f"{method} {template}"):
                missing = await call(
                    client, method, template.format(draft_id=uuid.uuid4()), caller, json=body
                )
                as_if_missing = without_request_id(assert_problem(missing, 404, "not_found"))
                url = template.format(draft_id=drafts[target])
                response = await call(client, method, url, caller, json=body)
                problem = assert_problem(response, 404, "not_found")
                assert without_request_id(problem) == as_if_missing
                assert world.org(target).name not in response.text
    for name, key in owners.items():
        await assert_draft_untouched(client, key, drafts[name])


async def _processing(client: AsyncClient, key: Key) -> dict[str, int]:
    response = await call(client, "GET", "/v1/organization/processing", key)
    assert response.status_code == 200, response.text
    return {p["provider"]: p["requests"] for p in response.json()["processors"]}


@covers("GET", "/v1/organization/processing")
async def test_a_record_of_processing_counts_only_its_own_organisations_requests(
    client: AsyncClient, world: World, subtests: pytest.Subtests
) -> None:
    """Neither a sibling, nor the parent EPCI, nor the operator counts a commune's requests."""
    readers = ["commune_b.admin", "epci_a.admin", "epci_a.agent", "a2.admin", "operator"]
    before = {name: await _processing(client, world.key(name)) for name in readers}
    author = world.key("a1.agent")
    own_before = await _processing(client, author)
    await create_draft(client, author)
    assert sum((await _processing(client, author)).values()) == sum(own_before.values()) + 1
    for name in readers:
        with subtests.test(reader=name):
            assert await _processing(client, world.key(name)) == before[name]


@covers("GET", "/v1/drafts")
async def test_a_key_lists_only_its_own_organisations_drafts(
    client: AsyncClient, world: World, subtests: pytest.Subtests
) -> None:
    """An EPCI's admin does not see its communes' drafts, nor the operator anyone's."""
    authors = ["commune_a.agent", "a1.agent", "a2.admin", "epci_a.agent", "commune_b.admin"]
    made: dict[uuid.UUID, set[str]] = {}
    for name in authors:
        key = world.key(name)
        made.setdefault(key.organization.id, set()).add(await create_draft(client, key))
    for name in KEYS:
        caller = world.key(name)
        own = made.get(caller.organization.id, set())
        with subtests.test(caller=name):
            assert await listed_drafts(client, caller) == own
            assert await listed_drafts(client, caller, kind="arrete", status="draft") == own
            # Naming another organisation changes nothing.
            for other in (world.a1, world.commune_b):
                assert await listed_drafts(client, caller, organization_id=str(other.id)) == own


async def assert_cannot_reach_a_communes_draft(
    client: AsyncClient, world: World, caller_name: str, subtests: pytest.Subtests
) -> None:
    owner = world.key("a1.agent")
    draft_id = await create_draft(client, owner)
    caller = world.key(caller_name)
    for method, template, body in DRAFT_ROUTES:
        with subtests.test(caller=caller_name, route=f"{method} {template}"):
            url = template.format(draft_id=draft_id)
            response = await call(client, method, url, caller, json=body)
            assert_problem(response, 404, "not_found")
            assert world.a1.name not in response.text
    await assert_draft_untouched(client, owner, draft_id)


@covers("GET", "/v1/drafts/{draft_id}")
@covers("POST", "/v1/drafts/{draft_id}/review")
@covers("GET", "/v1/drafts/{draft_id}/export")
async def test_an_epci_admin_does_not_reach_its_communes_drafts(
    client: AsyncClient, world: World, subtests: pytest.Subtests
) -> None:
    """A key acts for its own organisation: an EPCI admin's wider scope is for its communes'
    keys, usage and audit, not their documents (the list shows it none of them either)."""
    await assert_cannot_reach_a_communes_draft(client, world, "epci_a.admin", subtests)


@covers("GET", "/v1/drafts/{draft_id}")
@covers("POST", "/v1/drafts/{draft_id}/review")
@covers("GET", "/v1/drafts/{draft_id}/export")
async def test_the_operator_does_not_reach_a_communes_drafts(
    client: AsyncClient, world: World, subtests: pytest.Subtests
) -> None:
    """The operator reads every tenant's usage and audit (which never hold a document's
    text), not the documents themselves."""
    await assert_cannot_reach_a_communes_draft(client, world, "operator", subtests)


@covers("POST", "/v1/drafts")
async def test_a_draft_is_written_for_the_callers_own_organisation(
    client: AsyncClient, world: World
) -> None:
    caller = world.key("commune_b.agent")
    target = world.commune_a
    smuggled = {"organization_id": str(target.id)}
    response = await client.post(
        "/v1/drafts",
        json=DRAFT_REQUEST,
        params=smuggled,
        headers={**caller.headers, "X-Organization-Id": str(target.id)},
    )
    assert response.status_code == 201, response.text
    draft = response.json()
    assert f"Fait à {world.commune_b.name}, le" in draft["text"]
    assert target.name not in draft["text"]
    assert str(target.id) not in response.text
    assert draft["id"] in await listed_drafts(client, caller)
    assert draft["id"] not in await listed_drafts(client, world.key("commune_a.agent"))
    assert draft["id"] not in await listed_drafts(client, world.key("commune_a.admin"))

    # In the body, the organisation (or the commune's identity) is refused outright.
    for field, value in (
        ("organization_id", str(target.id)),
        ("commune", target.name),
        ("insee_code", target.insee_code),
    ):
        refused = await call(
            client, "POST", "/v1/drafts", caller, json={**DRAFT_REQUEST, field: value}
        )
        body = assert_problem(refused, 422, "invalid_request")
        assert any(field in error["field"] for error in body["errors"]), body

    # An EPCI's admin drafts for the EPCI itself, never for one of its communes.
    epci_admin = world.key("epci_b.admin")
    response = await client.post(
        "/v1/drafts",
        json=DRAFT_REQUEST,
        params={"organization_id": str(world.b1.id)},
        headers=epci_admin.headers,
    )
    assert response.status_code == 201, response.text
    assert f"Fait à {world.epci_b.name}, le" in response.json()["text"]
    assert response.json()["id"] not in await listed_drafts(client, world.key("b1.admin"))


# --------------------------------------------------------------------------------------
# Quotas
# --------------------------------------------------------------------------------------

# (caller, organisation whose quotas it must neither read nor set)
FOREIGN_QUOTAS = [
    ("commune_b.admin", "commune_a"),
    ("epci_b.admin", "a1"),  # another EPCI's commune
    ("epci_a.admin", "commune_a"),  # a commune that is not one of its own
    ("epci_a.admin", "epci_b"),
    ("a1.admin", "a2"),  # a sibling commune
    ("a1.agent", "a2"),
]


@covers("GET", "/v1/quotas")
@covers("PUT", "/v1/quotas")
async def test_another_tenants_quotas_are_not_found(
    client: AsyncClient, world: World, subtests: pytest.Subtests
) -> None:
    operator = world.key("operator")
    secret = [{"metric": "requests", "period": "day", "limit": 777}]
    for name in ("commune_a", "a1", "a2", "epci_b"):
        response = await call(
            client,
            "PUT",
            f"/v1/admin/organizations/{world.org(name).id}/quotas",
            operator,
            json=secret,
        )
        assert response.status_code == 200, response.text
    for caller_name, target in FOREIGN_QUOTAS:
        caller = world.key(caller_name)
        target_id = world.org(target).id
        with subtests.test(caller=caller_name, target=target, method="GET"):
            response = await call(client, "GET", f"/v1/quotas?organization_id={target_id}", caller)
            assert_problem(response, 404, "not_found")
            # (The request id is random hex: it may hold 777 by chance.)
            assert "777" not in str(without_request_id(response.json()))
        with subtests.test(caller=caller_name, target=target, method="PUT"):
            response = await call(
                client,
                "PUT",
                f"/v1/quotas?organization_id={target_id}",
                caller,
                json=body_for("PUT", "/v1/quotas"),
            )
            # Only an EPCI admin may split at all; for it, another's commune does not exist.
            expected = 404 if world.org(caller_name.split(".")[0]).kind.value == "epci" else 403
            assert response.status_code == expected, response.text
    # Nobody's quota moved.
    for name in ("commune_a", "a1", "a2", "epci_b"):
        response = await call(
            client, "GET", f"/v1/admin/organizations/{world.org(name).id}/quotas", operator
        )
        assert [item["limit"] for item in response.json()["items"]] == [777]
    # A commune sees its own quotas and its EPCI's, never a sibling's.
    own = await call(client, "GET", "/v1/quotas", world.key("a1.agent"))
    assert {item["organization_id"] for item in own.json()["items"]} == {str(world.a1.id)}


# --------------------------------------------------------------------------------------
# Audit trail
# --------------------------------------------------------------------------------------

# (caller, organisation whose chain it must not read)
FOREIGN_CHAINS = [
    ("commune_b.admin", "commune_a"),
    ("epci_b.admin", "a1"),  # another EPCI's commune
    ("epci_a.admin", "commune_a"),  # a commune that is not one of its own
    ("epci_a.admin", "epci_b"),
    ("a1.admin", "epci_a"),  # its parent EPCI
    ("a1.admin", "a2"),  # a sibling commune
]


@covers("GET", "/v1/audit")
@covers("GET", "/v1/audit/export")
@covers("GET", "/v1/audit/verify")
@covers("GET", "/v1/audit/head")
async def test_another_tenants_audit_chain_is_not_found(
    client: AsyncClient, world: World, subtests: pytest.Subtests
) -> None:
    # Give every chain an entry: the operator renames each organisation to its own name.
    operator = world.key("operator")
    for name in ("commune_a", "a1", "a2", "epci_a", "epci_b"):
        organization = world.org(name)
        response = await call(
            client,
            "PATCH",
            f"/v1/admin/organizations/{organization.id}",
            operator,
            json={"name": organization.name},
        )
        assert response.status_code == 200, response.text
    for caller_name, target in FOREIGN_CHAINS:
        caller = world.key(caller_name)
        target_id = world.org(target).id
        for path in ("/v1/audit", "/v1/audit/export", "/v1/audit/verify", "/v1/audit/head"):
            with subtests.test(caller=caller_name, target=target, path=path):
                response = await call(client, "GET", f"{path}?organization_id={target_id}", caller)
                assert_problem(response, 404, "not_found")
                assert world.org(target).name not in response.text
    # Without organization_id, a caller reads its own chain only.
    own = await call(client, "GET", "/v1/audit", world.key("a1.admin"))
    assert {item["organization_id"] for item in own.json()["items"]} == {str(world.a1.id)}


@covers("GET", "/v1/usage")
async def test_another_tenants_usage_is_not_found(
    client: AsyncClient, world: World, subtests: pytest.Subtests
) -> None:
    for caller_name, target in FOREIGN_CHAINS:
        with subtests.test(caller=caller_name, target=target):
            target_id = world.org(target).id
            response = await call(
                client, "GET", f"/v1/usage?organization_id={target_id}", world.key(caller_name)
            )
            assert_problem(response, 404, "not_found")
    # Without organization_id, an EPCI admin's report covers itself and its communes only.
    own = await call(client, "GET", "/v1/usage?group_by=organization", world.key("epci_a.admin"))
    assert own.status_code == 200, own.text
    allowed = {world.epci_a.slug, world.a1.slug, world.a2.slug}
    assert {row["key"] for row in own.json()["rows"]} <= allowed


# --------------------------------------------------------------------------------------
# OAuth2 clients: managed as keys are, and their tokens confined as keys are
# --------------------------------------------------------------------------------------


async def client_state(db: AsyncSession) -> dict[uuid.UUID, tuple[uuid.UUID, Any]]:
    rows = await db.execute(
        select(OAuthClient.id, OAuthClient.organization_id, OAuthClient.revoked_at)
    )
    return {row.id: (row.organization_id, row.revoked_at) for row in rows}


async def new_client(client: AsyncClient, admin: Key, **params: str) -> dict[str, Any]:
    response = await call(
        client,
        "POST",
        "/v1/organization/oauth-clients",
        admin,
        json={"name": "Logiciel", "role": "agent"},
        params=params or None,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@covers("GET", "/v1/organization/oauth-clients")
@covers("POST", "/v1/organization/oauth-clients")
async def test_another_tenants_clients_are_out_of_reach(
    client: AsyncClient, db: AsyncSession, world: World, subtests: pytest.Subtests
) -> None:
    for organization_name in {victim for _, victim in FOREIGN_ORGANIZATIONS} - {"operator"}:
        admin = next(
            k
            for k in world.keys.values()
            if k.organization == world.org(organization_name) and k.role == "tenant_admin"
        )
        await new_client(client, admin)
    before = await client_state(db)
    for caller_name, victim_name in FOREIGN_ORGANIZATIONS:
        caller, victim = world.key(caller_name), world.org(victim_name)
        params = {"organization_id": str(victim.id)}
        with subtests.test(caller=caller_name, victim=victim_name):
            for method in ("GET", "POST"):
                response = await call(
                    client,
                    method,
                    "/v1/organization/oauth-clients",
                    caller,
                    json=body_for(method, "/v1/organization/oauth-clients"),
                    params=params,
                )
                assert_problem(response, 404, "not_found")
            own = await call(client, "GET", "/v1/organization/oauth-clients", caller)
            assert own.status_code == 200, own.text
            assert all(
                item["organization_id"] == str(caller.organization.id)
                for item in own.json()["items"]
            )
    assert await client_state(db) == before


@covers("GET", "/v1/organization/oauth-clients")
@covers("POST", "/v1/organization/oauth-clients")
async def test_epci_admin_manages_its_communes_clients(client: AsyncClient, world: World) -> None:
    caller = world.key("epci_a.admin")
    created = await new_client(client, caller, organization_id=str(world.a1.id))
    assert created["organization_id"] == str(world.a1.id)
    listing = await call(
        client,
        "GET",
        "/v1/organization/oauth-clients",
        caller,
        params={"organization_id": str(world.a1.id)},
    )
    assert [item["id"] for item in listing.json()["items"]] == [created["id"]]
    revoked = await call(
        client, "DELETE", f"/v1/organization/oauth-clients/{created['id']}", caller
    )
    assert revoked.status_code == 204, revoked.text


@covers("DELETE", "/v1/organization/oauth-clients/{oauth_client_id}")
async def test_revoking_another_tenants_client_is_not_found(
    client: AsyncClient, db: AsyncSession, world: World, subtests: pytest.Subtests
) -> None:
    victims = {
        name: await new_client(client, world.key(name))
        for name in ("commune_a.admin", "a1.admin", "epci_a.admin")
    }
    before = await client_state(db)
    for caller_name, victim_name in [
        ("commune_b.admin", "commune_a.admin"),
        ("epci_b.admin", "a1.admin"),
        ("a1.admin", "epci_a.admin"),
        ("epci_a.admin", "commune_a.admin"),
    ]:
        caller, victim = world.key(caller_name), victims[victim_name]
        with subtests.test(caller=caller_name, victim=victim_name):
            response = await call(
                client, "DELETE", f"/v1/organization/oauth-clients/{victim['id']}", caller
            )
            assert_problem(response, 404, "not_found")
    assert await client_state(db) == before


@covers("GET", "/v1/me")
async def test_me_is_always_the_callers_own(client: AsyncClient, world: World) -> None:
    for name in ("commune_b.admin", "epci_b.agent", "a1.admin"):
        caller = world.key(name)
        response = await client.get(
            "/v1/me",
            params={"organization_id": str(world.commune_a.id), "id": world.key("operator").id},
            headers={**caller.headers, "X-Organization-Id": str(world.commune_a.id)},
        )
        assert response.status_code == 200, response.text
        me = response.json()
        assert me["id"] == caller.id
        assert me["organization"]["id"] == str(caller.organization.id)
        assert str(world.commune_a.id) not in response.text


async def test_a_clients_token_is_confined_to_its_tenant(client: AsyncClient, world: World) -> None:
    created = await new_client(client, world.key("epci_b.admin"))
    token = await client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": created["client_id"],
            "client_secret": created["client_secret"],
        },
    )
    assert token.status_code == 200, token.text
    machine = Key(
        created["id"], token.json()["access_token"], world.epci_b, world.key("epci_b.agent").role
    )
    theirs = await call(
        client, "POST", "/v1/drafts", world.key("commune_a.agent"), json=dict(DRAFT_REQUEST)
    )
    assert theirs.status_code == 201, theirs.text
    response = await call(client, "GET", f"/v1/drafts/{theirs.json()['id']}", machine)
    assert_problem(response, 404, "not_found")
    for path in (
        "/v1/organization/api-keys",
        "/v1/organization/oauth-clients",
        "/v1/admin/organizations",
    ):
        assert_problem(await call(client, "GET", path, machine), 403, "forbidden")
    mine = await call(client, "GET", "/v1/organization", machine)
    assert mine.json()["id"] == str(world.epci_b.id)


# Agents (ProConnect): /v1/organization/agents, /v1/me, and the sign-in pages
# --------------------------------------------------------------------------------------


async def _invited_agent(db: AsyncSession, organization: Organization) -> Agent:
    agent = Agent(
        organization_id=organization.id,
        email=f"agent.{uuid.uuid4().hex[:8]}@mairie.fr",
        role=AgentRole.AGENT,
        status=AgentStatus.INVITED,
    )
    db.add(agent)
    await db.flush()
    return agent


@covers("GET", "/v1/organization/agents")
@covers("POST", "/v1/organization/agents")
async def test_another_tenants_agents_are_not_found(
    client: AsyncClient, db: AsyncSession, world: World, subtests: pytest.Subtests
) -> None:
    path = "/v1/organization/agents"
    for caller_name, target in FOREIGN_ORGANIZATIONS:
        caller, target_id = world.key(caller_name), world.org(target).id
        with subtests.test(caller=caller_name, target=target):
            listed = await call(
                client, "GET", path, caller, params={"organization_id": str(target_id)}
            )
            assert_problem(listed, 404, "not_found")
            body = body_for("POST", path)
            invited = await call(
                client, "POST", path, caller, json=body, params={"organization_id": str(target_id)}
            )
            assert_problem(invited, 404, "not_found")
    assert (
        await db.execute(select(Agent).where(Agent.email == "intrus@example.fr"))
    ).first() is None
    # Without organization_id, only the caller's own agents.
    mine = await _invited_agent(db, world.commune_a)
    await _invited_agent(db, world.commune_b)
    own = await call(client, "GET", path, world.key("commune_a.admin"))
    assert [item["id"] for item in own.json()["items"]] == [str(mine.id)]


@covers("PATCH", "/v1/organization/agents/{agent_id}")
async def test_another_tenants_agent_cannot_be_changed(
    client: AsyncClient, db: AsyncSession, world: World
) -> None:
    theirs = await _invited_agent(db, world.commune_a)
    for caller_name in ("commune_b.admin", "epci_b.admin", "a1.admin", "epci_a.admin"):
        response = await call(
            client,
            "PATCH",
            f"/v1/organization/agents/{theirs.id}",
            world.key(caller_name),
            json={"status": "suspended"},
        )
        assert_problem(response, 404, "not_found")
    await db.refresh(theirs)
    assert theirs.status is AgentStatus.INVITED


@covers("GET", "/v1/me")
@covers("GET", "/v1/me/sessions")
@covers("DELETE", "/v1/me/sessions/{session_id}")
async def test_who_am_i_answers_the_callers_own_organisation(
    client: AsyncClient, world: World
) -> None:
    for name in ("commune_b.admin", "a1.agent", "epci_a.admin"):
        caller = world.key(name)
        me = await call(
            client, "GET", "/v1/me", caller, params={"organization_id": str(world.commune_a.id)}
        )
        assert me.json()["organization"]["id"] == str(caller.organization.id)
        # Keys have no sessions: nothing to list or end, whoever's they are.
        assert_problem(await call(client, "GET", "/v1/me/sessions", caller), 403, "forbidden")
        ended = await call(client, "DELETE", f"/v1/me/sessions/{uuid.uuid4()}", caller)
        assert_problem(ended, 403, "forbidden")


@pytest.mark.parametrize("route", routes_of(WORKSPACE), ids=route_id)
async def test_the_workspace_refuses_keys_and_reveals_no_tenant(
    client: AsyncClient, world: World, route: tuple[str, str]
) -> None:
    """The agents' pages open to a signed-in agent's session only: a key is refused (403, a
    French page), and nothing of a tenant shows, whoever's key it is."""
    method, path = route
    concrete = path.replace("{slug}", "arrete").replace("{name}", "plume.css")
    url = fill(concrete, organization_id=uuid.uuid4(), key_id=uuid.uuid4())
    for name in ("commune_a.admin", "operator"):
        response = await call(client, method, url, world.key(name))
        if path == "/app/static/{name}":
            assert response.status_code == 200  # the same stylesheet for everyone
        else:
            assert response.status_code == 403, (name, response.text)
            assert "réservé aux agents connectés" in response.text
        for organization in (world.commune_a, world.epci_a, world.commune_b):
            assert str(organization.id) not in response.text
            assert organization.name not in response.text


@pytest.mark.parametrize("route", routes_of(SIGN_IN), ids=route_id)
async def test_sign_in_pages_without_a_provider_reveal_no_tenant(
    client: AsyncClient, world: World, route: tuple[str, str]
) -> None:
    """Without PLUME_OIDC_ISSUER sign-in is off: French pages, no tenant, no cookie."""
    method, path = route
    response = await call(client, method, path)
    assert response.status_code in (200, 303, 404), response.text
    # No session opened (logout clears the cookies: empty values).
    assert re.search(r"plume_session=[^\";]", response.headers.get("set-cookie", "")) is None
    for organization in (world.commune_a, world.epci_a, world.commune_b):
        assert str(organization.id) not in response.text
        assert organization.name not in response.text
    if path in ("/auth/login", "/auth/callback"):
        assert response.status_code == 404
        assert "n'est pas activée" in response.text.replace("&#x27;", "'")
