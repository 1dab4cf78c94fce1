"""Authentication and authorization as typed FastAPI dependencies.

This module is the only producer of a request's TenantScope: it looks the key up (through
`api_key_lookup`, a SECURITY DEFINER function: there is no scope yet, and the application
role sees nothing without one), then switches the transaction to the row-level-security
role with the caller's scope before any endpoint code runs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from sqlalchemy.ext.asyncio import AsyncSession

from plume.config import Settings
from plume.credentials.repository import ApiKeyRepository, FoundKey, lookup_alone
from plume.credentials.secrets import KeyHasher, is_well_formed
from plume.credentials.service import ROLE_RANK
from plume.db import TenantScope, enter_tenant_context, keep_tenant_scope
from plume.errors import Forbidden, OrganizationSuspended, Unauthenticated
from plume.models import ApiKeyRole, Organization, OrganizationKind, OrganizationStatus
from plume.oauth.service import find_client
from plume.oauth.tokens import looks_like_jwt
from plume.organizations.policy import EffectivePolicy, effective_policy
from plume.organizations.schemas import OrganizationOut
from plume.organizations.service import OrganizationService, organization_out
from plume.web.transaction import DBSession, FirstConn

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description=(
        "`Authorization: Bearer plm_…` (an API key) or `Bearer <access token>` (an OAuth2 "
        "client's, from POST /oauth/token); the listed roles may call the operation."
    ),
)


@dataclass(frozen=True, slots=True)
class Level:
    """One organisation of a caller's chain (operator, EPCI, commune)."""

    id: uuid.UUID
    kind: OrganizationKind
    name: str


def _levels(chain: list[Organization]) -> tuple[Level, ...]:
    return tuple(Level(o.id, o.kind, o.name) for o in chain)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, acting for exactly one organisation: an API key (`key_id`), an OAuth2
    client (`client_id`) or a signed-in agent (`agent_id`, with its `session_id`). A background
    job acts for whoever queued it (all None if unknown)."""

    key_id: uuid.UUID | None
    role: ApiKeyRole
    organization: OrganizationOut
    policy: EffectivePolicy
    scope: TenantScope
    # The EPCI a commune belongs to, for documents written in its name.
    epci_name: str | None = None
    # The organisation and its ancestors, operator first: quotas count at every level.
    chain: tuple[Level, ...] = ()
    client_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None

    @property
    def organization_id(self) -> uuid.UUID:
        return self.organization.id


def hashers(settings: Settings) -> list[KeyHasher]:
    """The current secret's hasher first, then those of previous secrets (rotation)."""
    current = KeyHasher.from_secret(settings.require_secret_key())
    previous = [KeyHasher.from_secret(s.get_secret_value()) for s in settings.previous_secret_keys]
    return [current, *previous]


async def _find_key(
    repository: ApiKeyRepository, token: str, candidates: list[KeyHasher]
) -> FoundKey | None:
    """The key, under the current secret or a previous one (then re-hashed)."""
    return await repository.lookup([h.hash(token) for h in candidates], candidates[0].version)


def _scope_for(
    role: ApiKeyRole, chain: list[Organization], children: list[uuid.UUID]
) -> TenantScope:
    organization = chain[-1]
    ancestors = frozenset(level.id for level in chain[:-1])
    if role is ApiKeyRole.OPERATOR_ADMIN:
        return TenantScope.everything()
    if role is ApiKeyRole.TENANT_ADMIN and organization.kind is OrganizationKind.EPCI:
        return TenantScope(frozenset([organization.id, *children]), ancestor_ids=ancestors)
    return TenantScope(frozenset([organization.id]), ancestor_ids=ancestors)


async def authenticate_token(
    session: AsyncSession, settings: Settings, token: str | None
) -> Principal:
    """Identify the key (or the OAuth2 client) and its organisation; raise 401/403 as the
    contract says."""
    if token and looks_like_jwt(token):
        # Imported here: it builds its Principal with this module's helpers.
        from plume.oauth.bearer import authenticate_access_token

        return await authenticate_access_token(session, settings, token)
    if not token or not is_well_formed(token):
        raise Unauthenticated()
    # The lookup precedes the caller's scope (the function needs none); it also records the
    # key's use, if the key may be used.
    found = await _find_key(
        ApiKeyRepository(session, TenantScope.everything()), token, hashers(settings)
    )
    return _key_principal(found)


def _key_principal(found: FoundKey | None) -> Principal:
    """The key's principal, if it may be used (401/403 as the contract says)."""
    if found is None:
        raise Unauthenticated()
    key, chain, children = found.key, found.chain, found.children
    organization = chain[-1]
    now = datetime.now(UTC)
    if key.revoked_at is not None:
        raise Unauthenticated("Cette clé d'API a été révoquée.")
    if key.expires_at is not None and key.expires_at <= now:
        raise Unauthenticated("Cette clé d'API a expiré.")

    if any(level.status is OrganizationStatus.SUSPENDED for level in chain):
        raise OrganizationSuspended()

    policy = effective_policy([level.policy for level in chain])
    return Principal(
        key_id=key.id,
        role=key.role,
        organization=organization_out(organization, policy),
        policy=policy,
        scope=_scope_for(key.role, chain, children),
        epci_name=next((o.name for o in chain if o.kind is OrganizationKind.EPCI), None),
        chain=_levels(chain),
    )


# The same rules for a signed-in agent's session (plume.identity.sessions).
scope_for = _scope_for
levels_of = _levels


async def _authenticated(
    request: Request,
    security_scopes: SecurityScopes,
    session: AsyncSession,
    credentials: HTTPAuthorizationCredentials | None,
) -> Principal:
    settings = request.app.state.settings
    if credentials is None and "authorization" not in request.headers:
        # No Authorization header: a signed-in agent's session cookie, if any. Imported
        # here: plume.identity builds on this module.
        from plume.identity.sessions import SESSION_COOKIE, authenticate_session

        if SESSION_COOKIE in request.cookies:
            principal = await authenticate_session(request, session, settings)
            request.state.principal = principal
            _check_role(principal, security_scopes)
            return principal
    token = credentials.credentials if credentials is not None else None
    principal = await authenticate_token(session, settings, token)
    # Known before the role check, so that a refusal is audited as this caller's.
    request.state.principal = principal
    _check_role(principal, security_scopes)
    return principal


def _check_role(principal: Principal, security_scopes: SecurityScopes) -> None:
    required = [ApiKeyRole(role) for role in security_scopes.scopes]
    if required and ROLE_RANK[principal.role] < min(ROLE_RANK[r] for r in required):
        raise Forbidden()


async def authenticate(
    request: Request,
    security_scopes: SecurityScopes,
    session: DBSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Principal:
    """The caller, with the request's transaction in its tenant context."""
    principal = await _authenticated(request, security_scopes, session, credentials)
    await enter_tenant_context(session, principal.scope)
    return principal


_ALL = [role.value for role in ApiKeyRole]

AnyKey = Annotated[Principal, Security(authenticate, scopes=_ALL)]
TenantAdmin = Annotated[
    Principal, Security(authenticate, scopes=["tenant_admin", "operator_admin"])
]
OperatorAdmin = Annotated[Principal, Security(authenticate, scopes=["operator_admin"])]


async def authenticate_for_provider_call(
    request: Request,
    security_scopes: SecurityScopes,
    session: DBSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    first: FirstConn,
) -> Principal:
    """The caller, with the request's transaction not yet in its tenant context: the
    provider call's unit of work enters it together with the quota reservation, in one
    statement, then commits that transaction before the provider is called
    (plume.calls). An API key is looked up on a connection of its own, without the
    session, when it may (`FirstConnection`): the reservation follows on it."""
    token = credentials.credentials if credentials is not None else None
    if not first.possible or token is None or not is_well_formed(token):
        return await _authenticated(request, security_scopes, session, credentials)
    candidates = hashers(request.app.state.settings)
    hashes = [h.hash(token) for h in candidates]
    # Sent twice if the connection turns out closed: the lookup records the key's use, once
    # a minute at most, and a re-hash, done once.
    found = await first.first(
        lambda driver: lookup_alone(driver, first.dialect, hashes, candidates[0].version)
    )
    principal = _key_principal(found)
    request.state.principal = principal
    _check_role(principal, security_scopes)
    # The session, if the endpoint uses it after the reservation, begins in this scope.
    keep_tenant_scope(session, principal.scope)
    return principal


ProviderCaller = Annotated[Principal, Security(authenticate_for_provider_call, scopes=_ALL)]


async def principal_for_background_work(
    session: AsyncSession,
    organization_id: uuid.UUID,
    key_id: uuid.UUID | None,
    client_id: uuid.UUID | None = None,
) -> Principal:
    """The principal a background job acts as: the key (or the OAuth2 client) that asked,
    scoped to its own organisation, with the organisation's policy as it is now. A job stops
    as a request would: key expired, key or client revoked (401), organisation or an
    ancestor suspended (403).

    Reads the key and the organisation's chain with the system's scope (entered here)."""
    system = TenantScope.everything()
    await enter_tenant_context(session, system)
    organizations = OrganizationService(session, system)
    organization = await organizations.find(organization_id)
    if organization is None:
        raise Unauthenticated("L'organisation de cette demande n'existe plus.")
    if key_id is not None:
        key = await ApiKeyRepository(session, system).get(key_id)
        if key is None or key.revoked_at is not None:
            raise Unauthenticated("La clé d'API qui a demandé ce travail a été révoquée.")
        if key.expires_at is not None and key.expires_at <= datetime.now(UTC):
            raise Unauthenticated("La clé d'API qui a demandé ce travail a expiré.")
    if client_id is not None:
        client = await find_client(session, system, client_id)
        if client is None or client.revoked_at is not None:
            raise Unauthenticated("Le client OAuth2 qui a demandé ce travail a été révoqué.")
    chain = await organizations.chain(organization)
    if any(level.status is OrganizationStatus.SUSPENDED for level in chain):
        raise OrganizationSuspended()
    policy = effective_policy([level.policy for level in chain])
    return Principal(
        key_id=key_id,
        role=ApiKeyRole.AGENT,
        organization=organization_out(organization, policy),
        policy=policy,
        scope=TenantScope(
            frozenset([organization.id]),
            ancestor_ids=frozenset(level.id for level in chain[:-1]),
        ),
        epci_name=next((o.name for o in chain if o.kind is OrganizationKind.EPCI), None),
        chain=_levels(chain),
        client_id=client_id,
    )
